// The fleet store suite (store-suite.ts) against a real PostgreSQL server (test/helpers/postgres.ts),
// a fresh database per test, opened twice as two serve workers on two hosts do. Then two real
// `perch fleet serve` workers with separate store folders (two hosts) on one PostgreSQL database
// take the same event stream through the shared subscription: each event stored once.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import type { MqttClient } from 'mqtt';
import { openFleetStore } from '../../cloud-sync/fleet/store/open.js';
import { topics } from '../../cloud-sync/protocol/topics.js';
import { waitFor } from '../helpers/clients.js';
import { startMosquitto, type Mosquitto } from '../helpers/mosquitto.js';
import { startPostgres, type Postgres } from '../helpers/postgres.js';
import type { Child } from '../helpers/wire.js';
import { mqttClient, PREFIX, spawnFleet, TempDirs } from './harness.js';
import { fleetStoreSuite } from './store-suite.js';

let server: Postgres;
before(async () => {
  server = await startPostgres();
});
after(async () => {
  await server.close();
});

describe('fleet store: PostgreSQL', () => {
  fleetStoreSuite({
    fresh: async () => {
      const db = await server.createDatabase();
      return { open: () => openFleetStore({ store: '/nonexistent', db }) };
    },
  });

  test('an unreachable server is PERCH_ERR_STORE_UNAVAILABLE, with the password kept out of the message', async () => {
    await assert.rejects(openFleetStore({ store: '/nonexistent', db: `postgres://perch:s3cret@127.0.0.1:${server.port + 1}/x` }), (e: Error & { code?: string }) => {
      assert.equal(e.code, 'PERCH_ERR_STORE_UNAVAILABLE');
      assert.ok(!e.message.includes('s3cret'), e.message);
      return true;
    });
  });
});

describe('two fleet serve workers on two hosts, one PostgreSQL database', () => {
  const temp = new TempDirs();
  const children: Child[] = [];
  let broker: Mosquitto;
  let dev: MqttClient;
  before(async () => {
    broker = await startMosquitto();
  });
  after(async () => {
    await dev?.endAsync().catch(() => undefined);
    for (const c of children) await c.kill();
    await broker.close();
    temp.cleanup();
  });

  test('2,000 events in 200 batches, each batch sent twice: every event stored exactly once, all acked', async () => {
    const db = await server.createDatabase();
    const workers = [0, 1].map((i) => {
      const c = spawnFleet(['serve', '--url', broker.url, '--store', temp.make(), '--progress-ms', '0', '--client-id', `worker-${i}`], { PERCH_FLEET_DB: db });
      children.push(c);
      return c;
    });
    for (const w of workers) await waitFor(() => w.logLines().some((l) => l.msg === 'subscribed') || !w.running, 30_000, 'worker subscribed');
    for (const w of workers) assert.ok(w.running, w.stderr);

    dev = await mqttClient(broker.url, { clientId: 'pg-dev' });
    const t = topics(PREFIX, 'pg-dev');
    const acked = new Set<number>();
    dev.on('message', (_topic, payload) => {
      for (const [from, to] of (JSON.parse(payload.toString()) as { ranges: [number, number][] }).ranges) for (let s = from; s <= to; s++) acked.add(s);
    });
    await dev.subscribeAsync(t.eventsAck, { qos: 1 });
    const batch = (first: number): string =>
      JSON.stringify({ deviceId: 'pg-dev', events: Array.from({ length: 10 }, (_, i) => ({ id: randomUUID(), seq: first + i, ts: Date.now(), type: 't', payload: { n: first + i } })) });
    const sends: Promise<unknown>[] = [];
    for (let b = 0; b < 200; b++) {
      const body = batch(1 + b * 10);
      sends.push(dev.publishAsync(t.events, body, { qos: 1 }), dev.publishAsync(t.events, body, { qos: 1 }));
    }
    await Promise.all(sends);
    await waitFor(() => acked.size === 2000, 30_000, 'all 2000 seqs acked');
    const store = await openFleetStore({ store: '/nonexistent', db });
    try {
      const events = await store.events('pg-dev', 0, 5000);
      assert.deepEqual(events.map((e) => e.seq), Array.from({ length: 2000 }, (_, i) => i + 1));
    } finally {
      await store.close();
    }
    const stats = [];
    for (const w of workers) {
      w.proc.kill('SIGTERM');
      await w.exited;
      stats.push(w.logLines().find((l) => l.msg === 'fleet serve stopped') as { eventsStored: number; duplicates: number; batches: number });
    }
    assert.equal(stats[0]!.eventsStored + stats[1]!.eventsStored, 2000, 'stored once between them');
    assert.equal(stats[0]!.duplicates + stats[1]!.duplicates, 2000);
    assert.ok(stats.every((s) => s.batches > 0), `both workers took part: ${stats.map((s) => s.batches).join(', ')} batches`);
  });
});
