// A download's staging folder is keyed by the whole SHA-256 (chunk-store.ts): with
// cloud.allowUnsignedModels, a folder named by a 16-digit prefix held the chunks of any file
// sharing that prefix, and the next file was assembled from them (refused DIGEST_MISMATCH for
// good). A folder of that older name is not reused: it is deleted when an update of the model
// starts, and the file is fetched whole. Real Mosquitto, real staging files.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { createCloudAgent } from '../../cloud-sync/agent/index.js';
import { MODEL_FILES } from '../helpers/paths.js';
import { sha256, specFor } from './helpers/models.js';
import { startMosquitto, type Mosquitto } from '../helpers/mosquitto.js';
import { chunkResponder, publishDesired, waitFor } from './helpers/mqtt-client.js';
import { makePort } from './helpers/port.js';

const MODEL = readFileSync(MODEL_FILES.sileroVad);
const CHUNK = 64 * 1024;
const TOTAL = Math.ceil(MODEL.length / CHUNK);
let broker: Mosquitto;

before(async () => {
  broker = await startMosquitto();
});
after(async () => {
  await broker.close();
});

/** The journal (chunk-store.ts) naming every chunk as staged. */
function fullJournal(total: number): Buffer {
  const b = Buffer.alloc(total * 8);
  for (let i = 0; i < total; i++) {
    b.writeUInt32LE(i, i * 8);
    b.writeUInt32LE((~i ^ 0x50455243) >>> 0, i * 8 + 4);
  }
  return b;
}

test('a staging folder of the 16-digit name, holding another file of the same prefix, is not reused: deleted, the file fetched whole and installed', async () => {
  const t = makePort({ mqttUrl: broker.url, cloud: { allowUnsignedModels: true } });
  t.models.seed('vad', 1);
  const agent = createCloudAgent(t.port, { chunkTimeoutMs: 300 });
  const responder = await chunkResponder(broker.url, t.port.device.id, 'vad', 2, MODEL, CHUNK);
  try {
    await agent.start(new AbortController().signal);
    await waitFor(() => agent.online, 5000, 'online');
    // What an earlier download of a different file (same size, a digest sharing the prefix)
    // left staged, under the old name: every chunk journaled.
    const foreign = Buffer.from(MODEL);
    foreign[100] = (foreign[100] ?? 0) ^ 0xff;
    const old = join(t.port.models.stagingDir, 'vad', `2-${sha256(MODEL).slice(0, 16)}-${CHUNK}`);
    mkdirSync(old, { recursive: true });
    writeFileSync(join(old, 'model.onnx'), foreign);
    writeFileSync(join(old, 'staged.log'), fullJournal(TOTAL));
    await publishDesired(broker.url, t.port.device.id, { version: 1, models: { vad: specFor('vad', 2, MODEL, null, CHUNK) } });
    await waitFor(() => t.models.installs.length === 1 || t.events.some((e) => e.type === 'model.update.failed'), 60_000, 'the update ends');
    const failed = t.events.find((e) => e.type === 'model.update.failed');
    assert.equal(failed, undefined, JSON.stringify(failed?.payload));
    assert.equal(t.models.installs[0]?.sha256, sha256(MODEL));
    assert.ok(responder.requested >= TOTAL, `every chunk asked for (${responder.requested} of ${TOTAL})`);
    assert.ok(!existsSync(old), 'the old-name folder is deleted');
    const dir = join(t.port.models.stagingDir, 'vad');
    assert.deepEqual(existsSync(dir) ? readdirSync(dir) : [], [], 'nothing staged is left after the install');
  } finally {
    await agent.stop();
    await responder.close();
    await t.close(true);
  }
});
