// A device's share of `perch fleet serve`'s chunk answers, end to end with real processes
// (docs/fleet.md "A device's share"): while another device floods serve with requests for the
// same model (a raw mqtt.js client under its own device id, entitled to the version, asking for
// the whole file with 20 QoS 1 requests unacknowledged at a time and reading no chunk), a real
// `perch serve` device downloads it with its window and installs it byte for byte; serve refuses
// and counts the flood's excess (PERCH_ERR_FLEET_CHUNK_SHARE_EXCEEDED) and never the device's.
// Before, serve read and published every request in arrival order: the download did not finish
// in 70 s and serve grew past 12 GB (bench/fleet-share.ts). Nothing here is timed: each step
// waits for the state it needs, and the limits only bound the waits.
import assert from 'node:assert/strict';
import { createHash, randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fleet, spawnFleet } from '../fleet/harness.js';
import { startChunkFlood, type ChunkFlood } from '../helpers/chunk-flood.js';
import { startMosquitto, type Mosquitto } from '../helpers/mosquitto.js';
import { MODEL_FILES } from '../helpers/paths.js';
import { servePerch, writeDeviceConfig } from '../helpers/perch-process.js';
import { shippedModelConfig, TempRepository } from '../helpers/repository.js';
import type { Child } from '../helpers/wire.js';
import { readReported, waitFor } from './helpers/mqtt-client.js';

const PREFIX = 'perch/v1';
const MODEL = MODEL_FILES.sileroVad; // 2.3 MB
const CHUNK = 32 * 1024;
const CHUNKS = Math.ceil(readFileSync(MODEL).length / CHUNK); // 72

let broker: Mosquitto;
let repo: TempRepository;
const temp: string[] = [];
const children: Child[] = [];
let flood: ChunkFlood | undefined;

const tempDir = (prefix: string): string => {
  const d = mkdtempSync(join(tmpdir(), prefix));
  temp.push(d);
  return d;
};
const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

before(async () => {
  broker = await startMosquitto();
  repo = new TempRepository({ 'silero-vad': { versions: { 1: MODEL_FILES.sileroVad16k }, config: shippedModelConfig('silero-vad') } });
});
after(async () => {
  await flood?.stop();
  for (const c of children) await c.kill();
  await broker.close();
  repo.remove();
  for (const d of temp) rmSync(d, { recursive: true, force: true });
});

test('a device downloads and installs a model whole while another floods serve with requests for it; the flood is refused and counted', async () => {
  const run = randomUUID().slice(0, 6);
  const deviceId = `dl-${run}`;
  const flooderId = `flood-${run}`;
  const store = tempDir('perch-share-fleet-');
  const keys = join(tempDir('perch-share-keys-'), 'keys');
  assert.equal((await fleet(['keygen', '--out', keys])).code, 0);
  const push = async (device: string): Promise<void> => {
    const r = await fleet([
      'push', '--url', broker.url, '--store', store, '--force', '--device', device, '--model', 'silero-vad', '--version', '2',
      '--file', MODEL, '--chunk-size', String(CHUNK), '--sign-key', join(keys, 'signing-key.pem'),
    ]);
    assert.equal(r.code, 0, r.stderr);
  };

  const serve = spawnFleet(['serve', '--url', broker.url, '--store', store, '--progress-ms', '100']);
  children.push(serve);
  await waitFor(() => !serve.running || serve.logLines().some((l) => l.msg === 'fleet serve ready'), 60_000, 'fleet serve ready');
  assert.ok(serve.running, serve.stderr);
  const dataDir = tempDir('perch-share-dev-');
  const device = await servePerch(writeDeviceConfig({
    deviceId, dataDir, repository: repo.dir, mqttUrl: broker.url,
    cloud: { trustedKeysFile: join(keys, 'signing-key.pub.pem') },
  }), children);
  await waitFor(() => device.child.logLines().some((l) => l.msg === 'connected to the broker'), 30_000, 'device connected');

  // The flood first, entitled to the version like any device it is pushed to.
  await push(flooderId);
  flood = await startChunkFlood({ url: broker.url, prefix: PREFIX, deviceId: flooderId, name: 'silero-vad', version: 2, count: CHUNKS });
  const progress = (): Record<string, unknown> | undefined => serve.logLines().filter((l) => l.msg === 'progress').at(-1);
  await waitFor(() => Number(progress()?.chunkRequests ?? 0) > 0 && flood!.sent > 1000, 60_000, () => `the flood under way (${flood!.sent} sent)`);

  await push(deviceId);
  const outcome = await waitFor(async () => {
    const m = ((await readReported(broker.url, deviceId))?.models as Record<string, { version: number; status: string; error?: unknown }> | undefined)?.['silero-vad'];
    return m?.version === 2 && (m.status === 'active' || m.status === 'failed') ? m : null;
  }, 120_000, () => `version 2 active on ${deviceId}; serve: ${JSON.stringify(progress())}`, 250);
  const floodSentAtTheEnd = flood.sent;
  assert.equal(outcome.status, 'active', JSON.stringify(outcome));
  // The flood went on the whole time (the download happened under it).
  await waitFor(() => flood!.sent > floodSentAtTheEnd, 30_000, 'the flood still going');
  await flood.stop();
  flood = undefined;

  // Whole: the device checked size, SHA-256 and signature, and installed these very bytes.
  const fetched = device.child.logLines().find((l) => l.msg === 'model update step done' && l.step === 'verify-digest');
  assert.ok(fetched, 'verify-digest done');
  assert.equal(sha256(readFileSync(join(repo.dir, 'silero-vad', '2', 'model.onnx'))), sha256(readFileSync(MODEL)));

  serve.proc.kill('SIGTERM');
  await serve.exited;
  const last = serve.logLines().find((l) => l.msg === 'fleet serve stopped') as
    { ignored: Record<string, number>; chunkRequests: number; chunksSent: number; chunkDuplicates: number } | undefined;
  assert.ok(last, serve.stdout.slice(-2000));
  // The flood's excess refused before its JSON was read, counted, logged with the code.
  assert.ok((last.ignored['too-many-requests'] ?? 0) > 0, JSON.stringify(last));
  const refusals = serve.logLines().filter((l) => l.msg === 'chunk request ignored');
  assert.ok(refusals.some((l) => l.deviceId === flooderId && l.code === 'PERCH_ERR_FLEET_CHUNK_SHARE_EXCEEDED'), JSON.stringify(refusals.slice(0, 5)));
  // Never the downloading device's.
  assert.deepEqual(refusals.filter((l) => l.deviceId === deviceId), []);
  // Sent once each to the device; the flooder's repeats of what it was just sent were duplicates.
  assert.ok(last.chunkDuplicates > 0, JSON.stringify(last));
});
