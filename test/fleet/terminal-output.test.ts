// Device text in `perch fleet` output (cloud-sync/fleet/cli/visible.ts): a device's error codes,
// messages and reasons carrying terminal escapes (OSC 52 to the clipboard, clear screen), a
// carriage return, bidi overrides and line breaks reach the operator's terminal as visible
// \uXXXX escapes, never as the characters a terminal acts on; a table cell stays one cell and
// --json output stays the same JSON. Before, they were written as sent. Real Mosquitto.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { MqttClient } from 'mqtt';
import { topics } from '../../cloud-sync/protocol/topics.js';
import { startMosquitto, type Mosquitto } from '../helpers/mosquitto.js';
import { announceDevice, fleet, mqttClient, PREFIX, spawnFleet, TempDirs } from './harness.js';

const EVIL = 'OK\u001b]52;c;cm0gLXJmIH4=\u0007\u001b[2J\u001b[H\rpi-9  yes\u202eok\u009b31m\nFORGED ROW';
// What a terminal must never get from a device: ESC, BEL, CR, CSI (C1), a bidi override.
// eslint-disable-next-line no-control-regex
const ACTS = /[\u001b\u0007\r\u009b\u202e]/;

const temp = new TempDirs();
const clients: MqttClient[] = [];
let broker: Mosquitto;
before(async () => {
  broker = await startMosquitto();
});
after(async () => {
  for (const c of clients) await c.endAsync().catch(() => undefined);
  await broker.close();
  temp.cleanup();
});

test('devices (table and --json) and push --wait: device text is shown escaped, one line per row', async () => {
  const dev = await mqttClient(broker.url, { clientId: 'pi-evil' });
  clients.push(dev);
  const failed = (desiredVersion: number, version: number): Record<string, unknown> => ({
    desiredVersion,
    models: { vad: { version, sha256: 'a'.repeat(64), status: 'failed', error: { code: EVIL, message: EVIL } } },
    configError: { code: EVIL, message: EVIL },
  });
  await announceDevice(dev, 'pi-evil', failed(0, 1));
  const store = temp.make();
  const table = await fleet(['devices', '--url', broker.url, '--store', store]);
  assert.equal(table.code, 0, table.stderr);
  assert.doesNotMatch(table.stdout, ACTS);
  assert.match(table.stdout, /\\u001b\]52;c;cm0gLXJmIH4=\\u0007/, 'shown, escaped');
  const lines = table.stdout.trimEnd().split('\n');
  assert.equal(lines.length, 2, `a header and one row: ${table.stdout}`);
  assert.ok(!lines.some((l) => l.startsWith('FORGED')));

  const json = await fleet(['devices', '--url', broker.url, '--store', store, '--json']);
  assert.equal(json.code, 0, json.stderr);
  assert.doesNotMatch(json.stdout, ACTS);
  const rows = JSON.parse(json.stdout) as Array<{ deviceId: string; configError: { code: string } | null }>;
  assert.equal(rows.find((r) => r.deviceId === 'pi-evil')?.configError?.code, EVIL, 'the same JSON: the text reads back as sent');

  // push --wait prints the device's failure as it reports it.
  const t = topics(PREFIX, 'pi-evil');
  dev.on('message', (topic, payload) => {
    if (topic !== t.desired || payload.length === 0) return;
    const doc = JSON.parse(payload.toString()) as { version: number };
    void dev.publishAsync(t.reported, JSON.stringify({ ...failed(doc.version, 5), config: {}, ts: Date.now() }), { qos: 1, retain: true });
  });
  await dev.subscribeAsync(t.desired, { qos: 1 });
  const file = join(store, 'm.onnx');
  writeFileSync(file, 'model bytes');
  const push = await fleet(['push', '--url', broker.url, '--store', store, '--device', 'pi-evil', '--model', 'vad', '--version', '5', '--file', file, '--wait', '--wait-timeout', '20']);
  assert.equal(push.code, 1, push.stderr);
  assert.doesNotMatch(push.stderr, ACTS);
  assert.match(push.stderr, /failed: OK\\u001b\]52/);
  assert.ok(!push.stderr.split('\n').some((l) => l.startsWith('FORGED')), push.stderr);
});

test('devices through the real perch process: one device\'s 900 KB error code is one cut, escaped cell; the table stays small; --json has it whole', async () => {
  const dev = await mqttClient(broker.url, { clientId: 'pi-wide' });
  clients.push(dev);
  const code = `${EVIL}${'X'.repeat(900_000)}`;
  for (const id of ['pi-a', 'pi-b', 'pi-c']) await announceDevice(dev, id);
  await announceDevice(dev, 'pi-wide', { models: { vad: { version: 1, sha256: 'a'.repeat(64), status: 'failed', error: { code, message: 'm' } } } });
  const store = temp.make();
  const table = spawnFleet(['devices', '--url', broker.url, '--store', store]);
  assert.equal((await table.exited).code, 0, table.stderr);
  assert.doesNotMatch(table.stdout, ACTS);
  const lines = table.stdout.trimEnd().split('\n');
  assert.ok(lines.length >= 5, table.stdout.slice(0, 2000));
  // Before: every row padded to the 900 KB cell (272 MB for 301 devices).
  assert.ok(table.stdout.length < 16 * 1024, `${table.stdout.length} bytes`);
  const wide = lines.find((l) => l.startsWith('pi-wide')) ?? '';
  assert.match(wide, /vad v1 failed OK\\u001b\]52;c;.*…/);

  const json = spawnFleet(['devices', '--url', broker.url, '--store', store, '--json']);
  assert.equal((await json.exited).code, 0, json.stderr);
  const rows = JSON.parse(json.stdout) as Array<{ deviceId: string; models: Array<{ error: string | null }> }>;
  assert.equal(rows.find((r) => r.deviceId === 'pi-wide')?.models[0]?.error, code);
});
