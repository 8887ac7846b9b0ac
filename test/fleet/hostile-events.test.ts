// Event batches with text PostgreSQL cannot hold, against a real `perch fleet serve` on a real
// broker and a real PostgreSQL database (docs/fleet.md "Group commit"): U+0000 in an event's id,
// ts or type is stored as U+FFFD, so the batch is stored and acked like any other. Before, each
// such batch failed its store write and got no PUBACK; 200 of them from one device filled the
// broker's in-flight windows of serve's ingest connections, and no other device's event was
// stored or acked any more.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { MqttClient } from 'mqtt';
import { openFleetStore } from '../../cloud-sync/fleet/store/open.js';
import { topics } from '../../cloud-sync/protocol/topics.js';
import { waitFor } from '../helpers/clients.js';
import { startMosquitto, type Mosquitto } from '../helpers/mosquitto.js';
import { startPostgres, type Postgres } from '../helpers/postgres.js';
import type { Child } from '../helpers/wire.js';
import { mqttClient, PREFIX, spawnFleet, TempDirs } from './harness.js';

const temp = new TempDirs();
const clients: MqttClient[] = [];
let pgServer: Postgres;
let broker: Mosquitto;
let serve: Child | undefined;

before(async () => {
  [pgServer, broker] = await Promise.all([startPostgres(), startMosquitto()]);
});
after(async () => {
  for (const c of clients) await c.endAsync().catch(() => undefined);
  await serve?.kill();
  await broker.close();
  await pgServer.close();
  temp.cleanup();
});

async function device(id: string): Promise<{ client: MqttClient; acked: Set<number>; send: (events: unknown[]) => Promise<unknown> }> {
  const client = await mqttClient(broker.url, { clientId: id });
  clients.push(client);
  const t = topics(PREFIX, id);
  const acked = new Set<number>();
  client.on('message', (_topic, payload) => {
    for (const [from, to] of (JSON.parse(payload.toString()) as { ranges: [number, number][] }).ranges) for (let s = from; s <= to; s++) acked.add(s);
  });
  await client.subscribeAsync(t.eventsAck, { qos: 1 });
  return { client, acked, send: (events) => client.publishAsync(t.events, JSON.stringify({ deviceId: id, events }), { qos: 1 }) };
}

test('U+0000 in event ids, ts and types from one device: stored as U+FFFD and acked; the other devices are served throughout', async () => {
  const db = await pgServer.createDatabase();
  serve = spawnFleet(['serve', '--url', broker.url, '--store', temp.make(), '--progress-ms', '0', '--client-id', 'w'], { PERCH_FLEET_DB: db });
  await waitFor(() => serve!.logLines().some((l) => l.msg === 'subscribed') || !serve!.running, 30_000, 'serve subscribed');
  assert.ok(serve.running, serve.stderr);

  const odd = await device('odd-1');
  const good = await device('good-1');
  const event = (seq: number, over: Record<string, unknown> = {}): Record<string, unknown> => ({ id: `e${seq}`, seq, ts: Date.now(), type: 't', payload: { seq }, ...over });
  // More such batches than the broker lets serve's connections have in flight (Mosquitto: 20
  // each), each with an ordinary event beside the odd one.
  const sends: Promise<unknown>[] = [];
  const N = 200;
  for (let i = 0; i < N; i++) {
    const field = (['id', 'ts', 'type'] as const)[i % 3]!;
    sends.push(odd.send([event(2 * i + 1, { [field]: 'a\u0000b' }), event(2 * i + 2)]));
  }
  await Promise.all(sends);
  for (let b = 0; b < 20; b++) await good.send(Array.from({ length: 5 }, (_, i) => event(b * 5 + i + 1)));
  await waitFor(() => good.acked.size === 100 && odd.acked.size === 2 * N, 30_000, () => `acked: good device ${good.acked.size}/100, the other ${odd.acked.size}/${2 * N}`);

  const store = await openFleetStore({ store: '/nonexistent', db });
  try {
    assert.deepEqual((await store.events('good-1', 0, 500)).map((e) => e.seq), Array.from({ length: 100 }, (_, i) => i + 1));
    const stored = await store.events('odd-1', 0, 1000);
    assert.equal(stored.length, 2 * N);
    assert.deepEqual(stored.slice(0, 6).map((e) => [e.id, e.type, typeof e.ts === 'string' ? e.ts : 'number']), [
      ['a\ufffdb', 't', 'number'], ['e2', 't', 'number'],
      ['e3', 't', 'a\ufffdb'], ['e4', 't', 'number'],
      ['e5', 'a\ufffdb', 'number'], ['e6', 't', 'number'],
    ]);
  } finally {
    await store.close();
  }
  assert.ok(!serve.logLines().some((l) => l.msg === 'message not stored' || l.msg === 'payload ignored'), 'nothing refused');
});
