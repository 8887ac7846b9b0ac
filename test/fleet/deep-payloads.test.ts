// Messages nesting objects or arrays deeply, from one device, against a real `perch fleet serve`
// process on a real broker (SQLite store). JSON.parse takes any depth but JSON.stringify does not:
// before, each event batch with a 20,000-level payload threw in the store write ('Maximum call
// stack size exceeded'), got no PUBACK and kept one of the broker's in-flight slots (Mosquitto:
// 20 per connection); 200 of them stopped every device's events, and deep reported states did the
// same to the status and reported state of every device. Now a message nested more than
// MAX_JSON_DEPTH (128) levels is refused unread as PERCH_ERR_MQTT_PAYLOAD_INVALID (reason
// `depth`), acknowledged and counted (runtime/base/json-depth.ts, docs/fleet.md "serve").
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { MqttClient } from 'mqtt';
import { topics } from '../../cloud-sync/protocol/topics.js';
import { waitFor } from '../helpers/clients.js';
import { startMosquitto, type Mosquitto } from '../helpers/mosquitto.js';
import type { Child } from '../helpers/wire.js';
import { fleet, mqttClient, PREFIX, spawnFleet, TempDirs } from './harness.js';

const temp = new TempDirs();
const clients: MqttClient[] = [];
let broker: Mosquitto;
let serve: Child | undefined;

before(async () => {
  broker = await startMosquitto();
});
after(async () => {
  for (const c of clients) await c.endAsync().catch(() => undefined);
  await serve?.kill();
  await broker.close();
  temp.cleanup();
});

const DEEP = `${'['.repeat(20_000)}${']'.repeat(20_000)}`;

test('deeply nested event batches and reported states from one device are refused and acknowledged; the other devices are served throughout', async () => {
  const store = temp.make();
  serve = spawnFleet(['serve', '--url', broker.url, '--store', store, '--progress-ms', '500']);
  await waitFor(() => serve!.logLines().some((l) => l.msg === 'subscribed') || !serve!.running, 30_000, 'serve subscribed');
  assert.ok(serve.running, serve.stderr);

  const deep = await mqttClient(broker.url, { clientId: 'deep-1' });
  const good = await mqttClient(broker.url, { clientId: 'good-1' });
  clients.push(deep, good);
  const d = topics(PREFIX, 'deep-1');
  const g = topics(PREFIX, 'good-1');
  const acked = new Set<number>();
  good.on('message', (_topic, payload) => {
    for (const [from, to] of (JSON.parse(payload.toString()) as { ranges: [number, number][] }).ranges) for (let s = from; s <= to; s++) acked.add(s);
  });
  await good.subscribeAsync(g.eventsAck, { qos: 1 });

  // More than the broker lets serve's 8 ingest connections hold in flight (8 x 20), and more
  // reported states than the main connection's 20.
  const batch = (id: string, seq: number, payload: string): string => `{"deviceId":"${id}","events":[{"id":"e${seq}","seq":${seq},"ts":1,"type":"t","payload":${payload}}]}`;
  const sends: Promise<unknown>[] = [];
  for (let i = 1; i <= 200; i++) sends.push(deep.publishAsync(d.events, batch('deep-1', i, DEEP), { qos: 1 }));
  for (let i = 0; i < 30; i++) {
    sends.push(deep.publishAsync(d.reported, `{"desiredVersion":0,"models":{},"config":{"a":${DEEP}},"ts":1}`, { qos: 1 }));
  }
  await Promise.all(sends);

  for (let seq = 1; seq <= 20; seq++) await good.publishAsync(g.events, batch('good-1', seq, '{"ok":true}'), { qos: 1 });
  await good.publishAsync(g.status, JSON.stringify({ online: true, ts: 1, runtimeVersion: '0.1.0', bootId: 'b' }), { qos: 1, retain: true });
  await waitFor(() => acked.size === 20, 30_000, () => `good device acked ${acked.size}/20; serve: ${serve!.stdout.slice(-2000)}`);
  await waitFor(() => {
    const p = serve!.logLines().filter((l) => l.msg === 'progress').at(-1) as { ignored?: Record<string, number>; statusUpdates?: number } | undefined;
    return (p?.ignored?.depth ?? 0) >= 230 && (p?.statusUpdates ?? 0) >= 1;
  }, 30_000, () => `progress: ${JSON.stringify(serve!.logLines().filter((l) => l.msg === 'progress').at(-1))}`);
  assert.ok(!serve.logLines().some((l) => l.msg === 'message not stored'), 'no store write failed');

  const devices = await fleet(['devices', '--url', broker.url, '--store', store, '--json']);
  assert.equal(devices.code, 0, devices.stderr);
  const rows = JSON.parse(devices.stdout) as Array<{ deviceId: string; online: boolean | null; eventsStored: number }>;
  assert.equal(rows.find((r) => r.deviceId === 'good-1')?.eventsStored, 20);
  assert.equal(rows.find((r) => r.deviceId === 'good-1')?.online, true);
});
