// What one device (or a peer with publish rights on device topics) can make a real `perch fleet
// serve` process write, on a real broker: (1) topics whose device id is no device id (a bidi
// override, a Cyrillic look-alike letter, an escape): a broker lets any UTF-8 through, and serve
// stored and showed them (`devices` table, rollouts by --select/--all), though no command could
// name them; now they are not serve's topics (counted as ignored.topic, nothing stored). (2) A
// flood of bad payloads: serve wrote a `payload ignored` line for each one; now at most one a
// second per device and reason (ignored-log.ts), every one counted. docs/fleet.md "serve".
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

type Progress = { ignored?: Record<string, number>; statusUpdates?: number; reportedUpdates?: number; batches?: number };
const lastProgress = (c: Child): Progress | undefined => c.logLines().filter((l) => l.msg === 'progress').at(-1) as Progress | undefined;

test('device ids that are no device ids are not stored; a flood of bad payloads is counted with a few lines', async () => {
  const store = temp.make();
  serve = spawnFleet(['serve', '--url', broker.url, '--store', store, '--progress-ms', '300']);
  await waitFor(() => serve!.logLines().some((l) => l.msg === 'subscribed') || !serve!.running, 30_000, 'serve subscribed');
  assert.ok(serve.running, serve.stderr);

  const peer = await mqttClient(broker.url, { clientId: 'peer-1' });
  clients.push(peer);
  const status = JSON.stringify({ online: true, ts: 1, runtimeVersion: '0.1.0', bootId: 'b', labels: { site: 'x' } });
  const reported = JSON.stringify({ desiredVersion: 0, models: {}, config: {}, ts: 1, labels: { site: 'x' } });
  // 'pi-1' with U+202E, with a Cyrillic 'і' (U+0456), with a trailing zero-width space, and a plain one.
  const odd = ['pi-\u202e1', 'p\u0456-1', 'pi-1\u200b'];
  for (const id of [...odd, 'pi-1']) {
    const t = topics(PREFIX, id);
    await peer.publishAsync(t.status, status, { qos: 1, retain: true });
    await peer.publishAsync(t.reported, reported, { qos: 1, retain: true });
    await peer.publishAsync(t.events, JSON.stringify({ deviceId: id, events: [{ id: 'e1', seq: 1, ts: 1, type: 't', payload: null }] }), { qos: 1 });
  }
  await waitFor(() => (lastProgress(serve!)?.batches ?? 0) >= 1 && (lastProgress(serve!)?.ignored?.topic ?? 0) >= 3 * odd.length, 30_000, () => JSON.stringify(lastProgress(serve!)));
  const p = lastProgress(serve)!;
  assert.equal(p.statusUpdates, 1);
  assert.equal(p.reportedUpdates, 1);
  assert.equal(p.batches, 1);

  const json = await fleet(['devices', '--url', broker.url, '--store', store, '--json']);
  assert.equal(json.code, 0, json.stderr);
  assert.deepEqual((JSON.parse(json.stdout) as Array<{ deviceId: string }>).map((d) => d.deviceId), ['pi-1'], 'only the device id a device can have');
  const all = await fleet(['remove', '--url', broker.url, '--store', store, '--all', '--model', 'vad', '--force']);
  assert.equal(all.code, 0, all.stderr);
  assert.equal(all.stdout.trim().split('\n').length, 1, `--all reaches pi-1 alone: ${all.stdout}`);

  // 3,000 bad payloads from one device, of two kinds: every one counted, a few lines written.
  const t = topics(PREFIX, 'pi-1');
  const started = Date.now();
  const bad: Promise<unknown>[] = [];
  for (let i = 0; i < 1500; i++) {
    bad.push(peer.publishAsync(t.events, 'not json', { qos: 1 }));
    bad.push(peer.publishAsync(t.status, '{"online":"yes"}', { qos: 1 }));
  }
  await Promise.all(bad);
  await waitFor(() => (lastProgress(serve!)?.ignored?.json ?? 0) >= 1500 && (lastProgress(serve!)?.ignored?.schema ?? 0) >= 1500, 60_000, () => JSON.stringify(lastProgress(serve!)));
  const seconds = Math.ceil((Date.now() - started) / 1000);
  const lines = serve.logLines().filter((l) => l.msg === 'payload ignored');
  assert.ok(lines.length >= 2, 'each kind is logged');
  assert.ok(lines.length <= 2 * (seconds + 1), `at most one line a second per kind: ${lines.length} lines for 3,000 payloads in ${seconds} s`);
  assert.ok(lines.every((l) => l.deviceId === 'pi-1' && l.code === 'PERCH_ERR_MQTT_PAYLOAD_INVALID'));
});

test("serve's log lines carry a device's DEL, C1 and bidi controls as \\uXXXX (JSON escapes only C0)", async () => {
  const store = temp.make();
  // A share group of its own: the first test's serve takes its share of the group's events.
  const own = spawnFleet(['serve', '--url', broker.url, '--store', store, '--progress-ms', '0', '--group', 'logs']);
  try {
    await waitFor(() => own.logLines().some((l) => l.msg === 'subscribed') || !own.running, 30_000, 'serve subscribed');
    const dev = await mqttClient(broker.url, { clientId: 'pi-2' });
    clients.push(dev);
    // Not JSON: V8's message quotes the payload, which lands in the `payload ignored` line.
    const words = 'x\u009b2J\u202eevil\u0085\u007f';
    await dev.publishAsync(topics(PREFIX, 'pi-2').events, words, { qos: 1 });
    await waitFor(() => own.logLines().some((l) => l.msg === 'payload ignored'), 30_000, () => own.stdout);
    assert.doesNotMatch(own.stdout, /[\u007f-\u009f\u202e]/, 'no raw DEL, C1 or bidi control on stdout');
    const line = own.logLines().find((l) => l.msg === 'payload ignored');
    assert.ok(String(line?.error).includes(words), 'the same characters once the JSON line is read');
  } finally {
    await own.kill();
  }
});
