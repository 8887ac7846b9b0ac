// Desired documents the device refuses unread (docs/cloud-sync.md "Desired and reported state"):
// oversized, not JSON, or breaking the schema, each is said in state/reported `ignored` with
// PERCH_ERR_MQTT_PAYLOAD_INVALID, the version when one can be read, and a bounded reason without
// the document's control characters; the next valid document still applies; a flood leaves one
// note (the latest), published at most once per IGNORED_REPORT_MS, and nothing in the outbox; and
// `perch fleet push --wait` ends with the refusal (exit 3) instead of its timeout.
// Before: such documents were only logged and counted on the device.
// Real Mosquitto, real SQLite store, `perch fleet push` in process.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { createCloudAgent, type CloudAgent } from '../../cloud-sync/agent/index.js';
import { IGNORED_REPORT_MS } from '../../cloud-sync/agent/desired-state.js';
import { MAX_IGNORED_REASON, topics } from '../../cloud-sync/protocol/index.js';
import { fleet } from '../fleet/harness.js';
import { startMosquitto, type Mosquitto } from '../helpers/mosquitto.js';
import { MODEL_FILES } from '../helpers/paths.js';
import { connectClient, PREFIX, publishDesired, readReported, waitFor } from './helpers/mqtt-client.js';
import { makePort, type TestPort } from './helpers/port.js';

const MAX_PAYLOAD = 64 * 1024;
let broker: Mosquitto;
let t: TestPort;
let agent: CloudAgent;
let store: string;

before(async () => {
  broker = await startMosquitto();
  t = makePort({ mqttUrl: broker.url, cloud: { maxPayloadBytes: MAX_PAYLOAD } });
  t.models.seed('vad', 1);
  agent = createCloudAgent(t.port);
  await agent.start(new AbortController().signal);
  await waitFor(() => agent.online, 5000, 'online');
  store = mkdtempSync(join(tmpdir(), 'perch-fleet-refused-'));
});
after(async () => {
  await agent?.stop();
  await t?.close(true);
  await broker?.close();
  rmSync(store, { recursive: true, force: true });
});

type Ignored = { version: number; code?: string; reason: string };
type Reported = { desiredVersion: number; ignored?: Ignored };
const reported = (): Promise<Reported | null> => readReported(broker.url, t.port.device.id) as Promise<Reported | null>;
const desiredTopic = (): string => topics(PREFIX, t.port.device.id).desired;

async function publishRaw(payload: string | Buffer): Promise<void> {
  const c = await connectClient(broker.url);
  await c.publishAsync(desiredTopic(), payload, { qos: 1, retain: true });
  await c.endAsync();
}

function untilIgnored(match: (i: Ignored) => boolean, what: string): Promise<Reported> {
  return waitFor(async () => {
    const rep = await reported();
    return rep?.ignored && match(rep.ignored) ? rep : null;
  }, 15_000, what);
}

// eslint-disable-next-line no-control-regex
const CONTROLS = /[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/;

function assertBounded(i: Ignored): void {
  assert.equal(i.code, 'PERCH_ERR_MQTT_PAYLOAD_INVALID');
  assert.ok(i.reason.length <= MAX_IGNORED_REASON, `reason of ${i.reason.length} characters`);
  assert.doesNotMatch(i.reason, CONTROLS);
}

test('not JSON, wrong types, hostile names: each reported with a code and a bounded reason; a valid document still applies', async () => {
  const schema = agent.stats().ignored.schema;
  await publishRaw('{"version": 7, not json \u001b]52;c;aGk=\u0007');
  let rep = await untilIgnored((i) => /is not JSON/.test(i.reason), 'the not-JSON document reported');
  assertBounded(rep.ignored!);
  assert.equal(rep.ignored!.version, 7, 'the version its first bytes name');
  assert.equal(rep.desiredVersion, 0);

  await publishDesired(broker.url, t.port.device.id, { version: 3, models: { vad: { version: 'two', sha256: 'x' } } });
  rep = await untilIgnored((i) => i.version === 3, 'the wrongly typed document reported');
  assertBounded(rep.ignored!);
  assert.match(rep.ignored!.reason, /^desired version 3 breaks the desired schema: models\.vad\.version: /);

  // Model names of 2,000 characters with escape sequences and bidi controls, and many issues.
  const hostile = `\u001b[2J\u202e${'A'.repeat(2_000)}`;
  const models = Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`${hostile}${i}`, { version: 1 }]));
  await publishDesired(broker.url, t.port.device.id, { version: 4, models });
  rep = await untilIgnored((i) => i.version === 4, 'the hostile document reported');
  assertBounded(rep.ignored!);
  assert.ok(!rep.ignored!.reason.includes('A'.repeat(100)), 'no long echo of the document');
  assert.ok(agent.stats().ignored.schema >= schema + 2);

  await publishDesired(broker.url, t.port.device.id, { version: 5, models: {}, config: {} });
  await waitFor(async () => {
    const r = await reported();
    return r?.desiredVersion === 5 && r.ignored === undefined ? r : null;
  }, 15_000, 'the valid document applied, the note gone');
});

test('a flood of bad documents: one bounded note, the latest, at most one publish per interval, nothing in the outbox', async () => {
  const outbox = t.port.outbox.stats().count;
  const before = agent.stats().ignored;
  const watcher = await connectClient(broker.url);
  const reportedTopic = topics(PREFIX, t.port.device.id).reported;
  let publishes = 0;
  let largest = 0;
  watcher.on('message', (topic, payload, packet) => {
    if (topic !== reportedTopic || packet.retain) return;
    publishes++;
    largest = Math.max(largest, payload.byteLength);
  });
  await watcher.subscribeAsync(reportedTopic, { qos: 1 });

  const N = 402; // the last one (i % 3 === 2) oversized
  const started = performance.now();
  const c = await connectClient(broker.url);
  await Promise.all(Array.from({ length: N }, (_, i) => {
    const version = 100 + i;
    // Every kind of refusal, each naming something of its own and bigger than the last.
    const payload = i % 3 === 0 ? `{"version": ${version}, ${'x'.repeat(i * 50)}`
      : i % 3 === 1 ? JSON.stringify({ version, models: { [`m${'y'.repeat(i * 50)}`]: { version: -1 } } })
        : JSON.stringify({ version, pad: 'z'.repeat(MAX_PAYLOAD) });
    return c.publishAsync(desiredTopic(), payload, { qos: 1 });
  }));
  const last = 100 + N - 1;
  const rep = await untilIgnored((i) => i.version === last, 'the last refusal reported');
  const elapsed = performance.now() - started;
  await c.endAsync();
  await watcher.endAsync();

  assertBounded(rep.ignored!);
  assert.match(rep.ignored!.reason, /over cloud\.maxPayloadBytes/, 'the latest refusal (oversized) is what is said');
  const after = agent.stats().ignored;
  assert.equal(after.json + after.schema + after.oversized - before.json - before.schema - before.oversized, N, 'every one counted');
  // Rate-limited: at once, then at most once per interval; the backlog watcher may add one.
  assert.ok(publishes <= Math.ceil(elapsed / IGNORED_REPORT_MS) + 2, `${publishes} publishes in ${Math.round(elapsed)} ms`);
  assert.ok(largest < 4096, `state/reported of ${largest} bytes`);
  assert.equal(t.port.outbox.stats().count, outbox, 'no event per refused document');
  assert.equal(rep.desiredVersion, 5, 'the applied document is still the applied one');
});

test('a key given twice (a live config setting) is refused, naming its path; nothing of the document applied', async () => {
  // JSON.parse kept the last "level" silently, and the live config took "info" (duplicate-keys.ts).
  const applied = t.appliedConfigs.length;
  const schema = agent.stats().ignored.schema;
  await publishRaw('{"version": 50, "models": {}, "config": {"log": {"level": "debug", "level": "info"}}}');
  const rep = await untilIgnored((i) => i.version === 50, 'the document with a key twice reported');
  assertBounded(rep.ignored!);
  assert.match(rep.ignored!.reason, /^desired version 50 breaks the desired schema: config\.log\.level: key given twice/);
  assert.equal(rep.desiredVersion, 5);
  assert.equal(t.appliedConfigs.length, applied, 'no live config applied');
  assert.equal(agent.stats().ignored.schema, schema + 1);
});

test('perch fleet push --wait ends with the refusal (exit 3, the code), not a timeout', async () => {
  // The fleet's next document keeps the current one's config: here more than the device takes.
  await publishDesired(broker.url, t.port.device.id, { version: 600, models: {}, config: { note: 'n'.repeat(MAX_PAYLOAD) } });
  const pushed = await fleet([
    'push', '--url', broker.url, '--store', store, '--device', t.port.device.id, '--force',
    '--model', 'vad', '--version', '2', '--file', MODEL_FILES.sileroVad, '--wait', '--wait-timeout', '30',
  ]);
  assert.equal(pushed.code, 3, pushed.stderr);
  assert.equal(JSON.parse(pushed.stdout).version, 601);
  assert.match(pushed.stderr, /ignored: PERCH_ERR_MQTT_PAYLOAD_INVALID: desired version 601 of \d+ bytes is over cloud\.maxPayloadBytes \(65536\)/);
  const rep = await reported();
  assert.equal(rep?.desiredVersion, 5);
});
