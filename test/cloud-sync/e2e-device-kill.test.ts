// End to end with real processes: `perch serve` (cloud sync on) is SIGKILLed in the middle of a
// model download; restarted on the same data dir it resumes from the chunks staged on disk (it
// asks for fewer chunks the second time), verifies, installs and serves the new version.
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { MODEL_FILES } from '../helpers/paths.js';
import { shippedModelConfig } from '../helpers/repository.js';
import { ChunkStore } from '../../cloud-sync/agent/model-update/chunk-store.js';
import { e2eSetup } from './helpers/e2e.js';
import { makeKeys, sha256, specFor } from './helpers/models.js';
import { topics } from '../../cloud-sync/protocol/index.js';
import { chunkResponder, publishDesired, readReported, readRetained, waitFor } from './helpers/mqtt-client.js';

const MODEL = readFileSync(MODEL_FILES.sileroVad16k); // 1.3 MB: 40 chunks of 32 KiB
const CHUNK = 32 * 1024;
const TOTAL = Math.ceil(MODEL.length / CHUNK);

const e2e = e2eSetup({ 'silero-vad': { versions: { 1: MODEL_FILES.sileroVad16k }, config: shippedModelConfig('silero-vad') } });

test('device SIGKILLed mid-download: after the restart the download resumes from staged chunks and the model serves', async () => {
  const keys = makeKeys();
  const { broker } = e2e;
  const { deviceId, dataDir, configFile } = e2e.device('kill', {
    cloud: {
      trustedKeysFile: keys.trustedKeysFile,
      // Slow enough to be killed in the middle: about 400 KB/s.
      download: { windowChunks: 4, maxBytesPerSecond: 400_000 },
    },
  });

  const first = await e2e.serve(configFile);
  const r1 = await chunkResponder(broker.url, deviceId, 'silero-vad', 2, MODEL, CHUNK);
  await publishDesired(broker.url, deviceId, { version: 1, models: { 'silero-vad': specFor('silero-vad', 2, MODEL, keys, CHUNK) } });
  // Killed once the device has made a quarter of the chunks durable, read from its staging
  // journal: chunks sent are not yet chunks staged (on a loaded machine the device lags behind
  // the responder, and a wait on chunks sent left only 4 to 6 of 40 staged at the kill).
  const staging = new ChunkStore(join(dataDir, 'staging'), 'silero-vad', 2, sha256(MODEL), CHUNK);
  // Only once the model file exists: before that, scan() removes a journal it finds alone.
  await waitFor(() => existsSync(staging.modelFile) && staging.scan(TOTAL).size >= 10, 30_000, 'a quarter of the chunks staged');
  await first.child.kill(); // SIGKILL: a power cut
  // The broker saw the socket die: the Last Will says offline (retained).
  await waitFor(async () => (await readRetained(broker.url, topics('perch/v1', deviceId).status))?.online === false, 10_000, 'Last Will');
  await r1.close();
  const stagingRoot = join(dataDir, 'staging', 'silero-vad');
  // What the killed process had made durable, read the way the next one will read it.
  const staged = new ChunkStore(join(dataDir, 'staging'), 'silero-vad', 2, sha256(MODEL), CHUNK).scan(TOTAL).size;
  assert.ok(staged >= 8 && staged < TOTAL, `${staged} of ${TOTAL} chunks staged at the kill`);

  const r2 = await chunkResponder(broker.url, deviceId, 'silero-vad', 2, MODEL, CHUNK);
  const second = await e2e.serve(configFile);
  await waitFor(async () => (await fetch(`${second.baseUrl}/v2/models/silero-vad/versions/2/ready`)).status === 200, 30_000, 'version 2 ready');
  assert.ok(r2.requested <= TOTAL - staged, `asked for ${r2.requested} chunks after the restart, ${staged} of ${TOTAL} were staged`);
  const rep = await waitFor(async () => {
    const r = await readReported(broker.url, deviceId);
    const m = (r?.models as Record<string, { version: number; status: string }> | undefined)?.['silero-vad'];
    return m?.version === 2 && m.status === 'active' ? r : null;
  }, 10_000, 'reported active v2');
  assert.equal(rep.desiredVersion, 1);
  assert.deepEqual(readdirSync(stagingRoot), [], 'staging cleaned after success');
  second.child.proc.kill('SIGTERM');
  assert.deepEqual(await second.child.exited, { code: 0, signal: null });
  await r2.close();
});
