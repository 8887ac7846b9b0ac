// End to end with real processes: `perch fleet push --wait` against a real `perch serve` device
// and a real `perch fleet serve`: download progress on one line, then an exit code saying how
// the push ended: active (0), failed with the device's code (1), ignored by the device because
// its version was not above the one applied (3, after the broker lost its retained documents
// and the fleet its store), or no answer in time (4).
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { connectAsync } from 'mqtt';
import { topics } from '../../cloud-sync/protocol/index.js';
import { fleet, spawnFleet } from '../fleet/harness.js';
import { startMosquitto, type Mosquitto } from '../helpers/mosquitto.js';
import { MODEL_FILES } from '../helpers/paths.js';
import { servePerch, writeDeviceConfig } from '../helpers/perch-process.js';
import { shippedModelConfig, TempRepository } from '../helpers/repository.js';
import type { Child } from '../helpers/wire.js';
import { readReported, waitFor } from './helpers/mqtt-client.js';

let broker: Mosquitto;
let repo: TempRepository;
const temp: string[] = [];
const children: Child[] = [];
const tempDir = (p: string): string => {
  const d = mkdtempSync(join(tmpdir(), p));
  temp.push(d);
  return d;
};

before(async () => {
  broker = await startMosquitto();
  repo = new TempRepository({ 'silero-vad': { versions: { 1: MODEL_FILES.sileroVad16k }, config: shippedModelConfig('silero-vad') } });
});
after(async () => {
  for (const c of children) await c.kill();
  await broker.close();
  repo.remove();
  for (const d of temp) rmSync(d, { recursive: true, force: true });
});

async function push(store: string, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const c = spawnFleet(['push', '--url', broker.url, '--store', store, '--model', 'silero-vad', '--file', MODEL_FILES.sileroVad, ...args]);
  children.push(c);
  const { code } = await c.exited;
  return { code, stdout: c.stdout, stderr: c.stderr };
}

test('push --wait: progress, then active (0), failed (1), ignored (3), timeout (4)', async () => {
  const deviceId = `wait-${randomUUID().slice(0, 8)}`;
  const dataDir = tempDir('perch-e2e-');
  const store = tempDir('perch-e2e-fleet-');
  const keys = join(tempDir('perch-e2e-keys-'), 'keys');
  assert.equal((await fleet(['keygen', '--out', keys])).code, 0);
  const configFile = writeDeviceConfig({
    deviceId, dataDir, repository: repo.dir, mqttUrl: broker.url,
    cloud: {
      trustedKeysFile: join(keys, 'signing-key.pub.pem'),
      // About 2.5 s for the 2.3 MB model: progress (once a second) shows at least once.
      download: { windowChunks: 4, maxBytesPerSecond: 1_000_000 },
    },
  });
  const serve = spawnFleet(['serve', '--url', broker.url, '--store', store, '--progress-ms', '0']);
  children.push(serve);
  await waitFor(() => !serve.running || serve.logLines().some((l) => l.msg === 'fleet serve ready'), 15_000, 'fleet serve ready');
  const device = await servePerch(configFile, children);
  await waitFor(async () => (await readReported(broker.url, deviceId))?.desiredVersion === 0, 15_000, 'device reported');

  const signKey = ['--sign-key', join(keys, 'signing-key.pem')];
  const active = await push(store, ['--device', deviceId, '--version', '2', ...signKey, '--wait', '--wait-timeout', '60']);
  assert.equal(active.code, 0, active.stderr);
  assert.match(active.stderr, /silero-vad v2: downloading \d+\/36 chunks \(\d+%\)/);
  assert.match(active.stderr, /silero-vad v2: active/);
  assert.equal(JSON.parse(active.stdout).version, 1);
  assert.ok(device.child.logLines().some((l) => l.msg === 'model download progress'), 'the device logs progress');

  const failed = await push(store, ['--device', deviceId, '--version', '3', '--wait', '--wait-timeout', '60']);
  assert.equal(failed.code, 1, failed.stderr);
  assert.match(failed.stderr, /silero-vad v3: failed: PERCH_ERR_MODEL_UNSIGNED/);

  // The broker loses its retained documents (no persistence) and the fleet its store: the fleet's
  // next version (1) is below the one the device applied (2). The device says so; --wait exits 3.
  const c = await connectAsync(broker.url, { reconnectPeriod: 0 });
  const t = topics('perch/v1', deviceId);
  await c.publishAsync(t.desired, '', { qos: 1, retain: true });
  await c.publishAsync(t.reported, '', { qos: 1, retain: true });
  await c.endAsync();
  const lost = tempDir('perch-e2e-fleet-lost-');
  const ignored = await push(lost, ['--device', deviceId, '--version', '4', ...signKey, '--wait', '--wait-timeout', '60']);
  assert.equal(ignored.code, 3, ignored.stderr);
  assert.equal(JSON.parse(ignored.stdout).version, 1);
  assert.match(ignored.stderr, /ignored: desired version 1 is not above version 2/);
  const devices = await fleet(['devices', '--url', broker.url, '--store', lost, '--json']);
  const row = (JSON.parse(devices.stdout) as Array<{ deviceId: string; ignored: { version: number } | null }>).find((d) => d.deviceId === deviceId);
  assert.equal(row?.ignored?.version, 1);

  // The fleet's own store keeps its counter: without any retained document, the next version
  // is above everything it published (here 2), not 1 again.
  await device.child.kill();
  const timeout = await push(store, ['--device', deviceId, '--version', '5', ...signKey, '--wait', '--wait-timeout', '1']);
  assert.equal(timeout.code, 4, timeout.stderr);
  assert.equal(JSON.parse(timeout.stdout).version, 3);
  assert.match(timeout.stderr, /no outcome within 1 s/);
});
