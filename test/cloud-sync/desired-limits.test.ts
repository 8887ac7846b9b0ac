// Desired documents that would cost a device without bound (docs/cloud-sync.md "Desired and
// reported state"): one naming more than MAX_DESIRED_MODELS models to serve is ignored whole,
// before any check, event or status entry, and said in state/reported (`ignored`), even on a
// device that never applied a document; the device goes on. Documents that each name other
// models cannot grow the status book (and every state/reported) past MAX_BOOK_ENTRIES.
// Before: 3,000 unsigned specs in one document took a device 40 s (the whole status book saved
// once per refusal) and left state/reported at 800 KB, and each later document added its own.
// Real Mosquitto, real SQLite store.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, test } from 'node:test';
import { createCloudAgent, type CloudAgent } from '../../cloud-sync/agent/index.js';
import { MAX_BOOK_ENTRIES } from '../../cloud-sync/agent/model-update/status-book.js';
import { MAX_DESIRED_MODELS } from '../../cloud-sync/protocol/index.js';
import { startMosquitto, type Mosquitto } from '../helpers/mosquitto.js';
import { MODEL_FILES } from '../helpers/paths.js';
import { makeKeys, specFor, type TestKeys } from './helpers/models.js';
import { chunkResponder, publishDesired, readReported, waitFor, type ChunkResponder } from './helpers/mqtt-client.js';
import { makePort, type TestPort } from './helpers/port.js';

const MODEL = readFileSync(MODEL_FILES.sileroVad);
const CHUNK = 64 * 1024;
let broker: Mosquitto;
let keys: TestKeys;
let t: TestPort;
let agent: CloudAgent;
let responder: ChunkResponder;

before(async () => {
  broker = await startMosquitto();
  keys = makeKeys();
  t = makePort({ mqttUrl: broker.url, cloud: { trustedKeysFile: keys.trustedKeysFile } });
  t.models.seed('vad', 1);
  agent = createCloudAgent(t.port, { chunkTimeoutMs: 300 });
  await agent.start(new AbortController().signal);
  await waitFor(() => agent.online, 5000, 'online');
  responder = await chunkResponder(broker.url, t.port.device.id, 'vad', 2, MODEL, CHUNK);
});
after(async () => {
  await agent?.stop();
  await responder?.close();
  await t?.close(true);
  await broker?.close();
});

type Reported = { desiredVersion: number; models: Record<string, { status: string; version: number; error?: { code: string } }>; ignored?: { version: number; reason: string } };

const unsigned = (): Record<string, unknown> => ({ version: 2, sha256: 'ab'.repeat(32), size: 100, chunkSize: 64 });
function named(from: number, count: number): Record<string, unknown> {
  return Object.fromEntries(Array.from({ length: count }, (_, i) => [`m${from + i}`, unsigned()]));
}
const reported = (): Promise<Reported | null> => readReported(broker.url, t.port.device.id) as Promise<Reported | null>;

test(`a first document naming ${MAX_DESIRED_MODELS + 1} models is ignored whole and reported; the next one applies`, async () => {
  const events = t.events.length;
  await publishDesired(broker.url, t.port.device.id, { version: 1, models: named(0, MAX_DESIRED_MODELS + 1) });
  const r = await waitFor(async () => {
    const rep = await reported();
    return rep?.ignored?.version === 1 ? rep : null;
  }, 10_000, 'state/reported says the document was ignored');
  assert.match(r.ignored!.reason, new RegExp(`names ${MAX_DESIRED_MODELS + 1} models to serve, over ${MAX_DESIRED_MODELS}`));
  assert.equal(r.desiredVersion, 0);
  assert.deepEqual(Object.keys(r.models), ['vad'], 'no status entry for any of them');
  assert.equal(agent.stats().ignored.schema, 1);
  assert.equal(t.events.length, events, 'no event per model');
  // The device goes on: the next document (a real signed update, and nulls that cost nothing) applies.
  const nulls = Object.fromEntries(Array.from({ length: 1000 }, (_, i) => [`gone${i}`, null]));
  await publishDesired(broker.url, t.port.device.id, { version: 2, models: { vad: specFor('vad', 2, MODEL, keys, CHUNK), ...nulls } });
  await waitFor(() => t.models.installs.length === 1, 15_000, 'the next update installs');
  await waitFor(async () => {
    const rep = await reported();
    return rep?.desiredVersion === 2 && rep.ignored === undefined ? rep : null;
  }, 10_000, 'applied, and the ignored note gone');
});

test(`documents each naming ${MAX_DESIRED_MODELS} other models: state/reported holds at most ${MAX_BOOK_ENTRIES} failures, the newest`, async () => {
  for (let d = 0; d < 3; d++) {
    await publishDesired(broker.url, t.port.device.id, { version: 3 + d, models: named(d * MAX_DESIRED_MODELS, MAX_DESIRED_MODELS) });
    const last = `m${(d + 1) * MAX_DESIRED_MODELS - 1}`;
    await waitFor(async () => {
      const rep = await reported();
      return rep?.models[last]?.status === 'failed' ? rep : null;
    }, 60_000, `document ${3 + d} refused`);
  }
  const rep = (await reported())!;
  const failed = Object.entries(rep.models).filter(([, m]) => m.status === 'failed');
  assert.equal(failed.length, MAX_BOOK_ENTRIES);
  assert.ok(failed.every(([n]) => Number(n.slice(1)) >= 3 * MAX_DESIRED_MODELS - MAX_BOOK_ENTRIES), 'the oldest failures went first');
  assert.equal(rep.models.vad?.status, 'active', 'what serves is always reported');
});
