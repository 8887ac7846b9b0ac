// End to end with real processes, model bytes over HTTP (docs/cloud-sync.md "Model bytes over
// HTTP"): `perch fleet serve --http` serves the fleet's model store with Range support; a
// `perch serve` device whose desired spec carries the url is SIGKILLed mid-download and, restarted
// on the same data dir, fetches only what its staging journal lacks (counted by a second fleet
// serve), verifies and serves the version. Then a stored file with one byte changed is refused
// by its digest, and the version before keeps serving.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { ChunkStore } from '../../cloud-sync/agent/model-update/chunk-store.js';
import { putModel, versionDir, MODEL_FILE } from '../../cloud-sync/fleet/store/model-store.js';
import { topics } from '../../cloud-sync/protocol/index.js';
import { spawnFleet } from '../fleet/harness.js';
import { startMosquitto, type Mosquitto } from '../helpers/mosquitto.js';
import { MODEL_FILES } from '../helpers/paths.js';
import { servePerch, writeDeviceConfig } from '../helpers/perch-process.js';
import { shippedModelConfig, TempRepository } from '../helpers/repository.js';
import type { Child } from '../helpers/wire.js';
import { makeKeys, sha256, specFor } from './helpers/models.js';
import { publishDesired, readReported, readRetained, waitFor } from './helpers/mqtt-client.js';

const MODEL = readFileSync(MODEL_FILES.sileroVad16k); // 1.3 MB: 40 chunks of 32 KiB
const CHUNK = 32 * 1024;
const TOTAL = Math.ceil(MODEL.length / CHUNK);

let broker: Mosquitto;
let repo: TempRepository;
const temp: string[] = [];
const children: Child[] = [];

before(async () => {
  broker = await startMosquitto();
  repo = new TempRepository({
    'silero-vad': { versions: { 1: MODEL_FILES.sileroVad16k }, config: shippedModelConfig('silero-vad') },
  });
});
after(async () => {
  for (const c of children) await c.kill();
  await broker.close();
  repo.remove();
  for (const d of temp) rmSync(d, { recursive: true, force: true });
});

/** `perch fleet serve --http 0` on `store`; resolves with the port it logged. */
async function fleetHttp(store: string): Promise<{ child: Child; port: number }> {
  const child = spawnFleet(['serve', '--url', broker.url, '--store', store, '--http', '0', '--progress-ms', '0']);
  children.push(child);
  const line = await waitFor(() => child.logLines().find((l) => l.msg === 'serving the model store over HTTP') ?? (child.running ? null : { exited: true }), 20_000, 'fleet serve --http');
  assert.ok(child.running, `fleet serve exited:\n${child.stderr}`);
  return { child, port: (line as { port: number }).port };
}

/** SIGTERM, and the counters of its last log line. */
async function stopFleet(child: Child): Promise<{ httpRequests: number; httpBytesSent: number }> {
  child.proc.kill('SIGTERM');
  await child.exited;
  const last = child.logLines().find((l) => l.msg === 'fleet serve stopped');
  assert.ok(last, `no 'fleet serve stopped' line:\n${child.stdout.slice(-2000)}`);
  return last as unknown as { httpRequests: number; httpBytesSent: number };
}

const modelStatus = async (deviceId: string): Promise<{ version: number; status: string; error?: { code: string } } | undefined> =>
  ((await readReported(broker.url, deviceId))?.models as Record<string, { version: number; status: string; error?: { code: string } }> | undefined)?.['silero-vad'];

test('over HTTP: SIGKILL mid-download resumes with Range requests for the missing bytes only; a tampered byte is refused', async () => {
  const deviceId = `http-${randomUUID().slice(0, 8)}`;
  const keys = makeKeys();
  const dataDir = mkdtempSync(join(tmpdir(), 'perch-e2e-'));
  const store = mkdtempSync(join(tmpdir(), 'perch-fleet-'));
  temp.push(dataDir, store);
  const configFile = writeDeviceConfig({
    deviceId, dataDir, repository: repo.dir, mqttUrl: broker.url,
    // Slow enough to be killed in the middle: about 400 KB/s.
    cloud: { trustedKeysFile: keys.trustedKeysFile, download: { windowChunks: 4, maxBytesPerSecond: 400_000 } },
  });

  const f1 = await fleetHttp(store);
  const spec = { ...specFor('silero-vad', 2, MODEL, keys, CHUNK), url: `http://127.0.0.1:${f1.port}/models/silero-vad/2/model.onnx` };
  putModel(store, 'silero-vad', spec, MODEL_FILES.sileroVad16k);
  const first = await servePerch(configFile, children);
  await publishDesired(broker.url, deviceId, { version: 1, models: { 'silero-vad': spec } });
  const staging = new ChunkStore(join(dataDir, 'staging'), 'silero-vad', 2, sha256(MODEL), CHUNK);
  await waitFor(() => existsSync(staging.modelFile) && staging.scan(TOTAL).size >= 10, 30_000, 'a quarter of the chunks staged');
  await first.child.kill(); // SIGKILL: a power cut
  await waitFor(async () => (await readRetained(broker.url, topics('perch/v1', deviceId).status))?.online === false, 10_000, 'Last Will');
  const before = await stopFleet(f1.child);
  assert.ok(before.httpRequests >= 1 && before.httpBytesSent >= 10 * CHUNK, `first serve sent ${before.httpBytesSent} bytes in ${before.httpRequests} requests`);
  const staged = new ChunkStore(join(dataDir, 'staging'), 'silero-vad', 2, sha256(MODEL), CHUNK).scan(TOTAL).size;
  assert.ok(staged >= 10 && staged < TOTAL, `${staged} of ${TOTAL} chunks staged at the kill`);

  // Same port again, so the url in the retained desired document still names it.
  const f2 = spawnFleet(['serve', '--url', broker.url, '--store', store, '--http', String(f1.port), '--progress-ms', '0', '--log-level', 'debug']);
  children.push(f2);
  await waitFor(() => f2.logLines().some((l) => l.msg === 'serving the model store over HTTP') || !f2.running, 20_000, 'second fleet serve');
  assert.ok(f2.running, f2.stderr);
  const second = await servePerch(configFile, children);
  await waitFor(async () => (await fetch(`${second.baseUrl}/v2/models/silero-vad/versions/2/ready`)).status === 200, 30_000, 'version 2 ready');
  const resumed = second.child.logLines().find((l) => l.msg === 'resuming model download over HTTP from staged chunks');
  assert.ok(resumed && Number(resumed.staged) >= staged, 'the restarted device resumed from its staging journal');
  await waitFor(async () => (await modelStatus(deviceId))?.status === 'active', 10_000, 'reported active v2');

  // Version 3: signed over the real bytes, one byte changed in the fleet store's copy.
  const spec3 = { ...specFor('silero-vad', 3, MODEL, keys, CHUNK), url: `http://127.0.0.1:${f1.port}/models/silero-vad/3/model.onnx` };
  putModel(store, 'silero-vad', spec3, MODEL_FILES.sileroVad16k);
  const tampered = Buffer.from(MODEL);
  const at = Math.floor(tampered.length / 2);
  tampered[at] = (tampered[at] ?? 0) ^ 0x01;
  writeFileSync(join(versionDir(store, 'silero-vad', 3), MODEL_FILE), tampered);
  await publishDesired(broker.url, deviceId, { version: 2, models: { 'silero-vad': spec3 } });
  const refused = await waitFor(async () => {
    const m = await modelStatus(deviceId);
    return m?.version === 3 && m.status === 'failed' ? m : null;
  }, 30_000, 'version 3 refused');
  assert.equal(refused.error?.code, 'PERCH_ERR_MODEL_DIGEST_MISMATCH');
  assert.equal((await fetch(`${second.baseUrl}/v2/models/silero-vad/versions/2/ready`)).status, 200, 'version 2 still serves');
  assert.equal((await fetch(`${second.baseUrl}/v2/models/silero-vad/versions/3/ready`)).status, 404);

  second.child.proc.kill('SIGTERM');
  assert.deepEqual(await second.child.exited, { code: 0, signal: null });
  const after2 = await stopFleet(f2);
  // Only what the journal lacked (plus the refused version 3, whole): never version 2 again in full.
  const v2Bytes = after2.httpBytesSent - MODEL.length;
  const notes = f2.logLines().filter((l) => l.msg === 'model bytes sent').map((l) => JSON.stringify(l)).join('\n');
  assert.ok(v2Bytes <= MODEL.length - staged * CHUNK, `after the restart ${v2Bytes} bytes of version 2 were sent in ${after2.httpRequests} requests; ${staged} of ${TOTAL} chunks were staged\n${notes}`);
});
