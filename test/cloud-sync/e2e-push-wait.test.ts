// End to end with real processes: `perch fleet push --wait` against a real `perch serve` device
// and a real `perch fleet serve`: download progress on one line, then an exit code saying how
// the push ended: active (0), failed with the device's code (1), ignored by the device because
// its version was not above the one applied (3, after the broker lost its retained documents
// and the fleet its store), or no answer in time (4).
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { connectAsync } from 'mqtt';
import { topics } from '../../cloud-sync/protocol/index.js';
import { fleet, spawnFleet } from '../fleet/harness.js';
import { MODEL_FILES } from '../helpers/paths.js';
import { shippedModelConfig } from '../helpers/repository.js';
import { e2eSetup } from './helpers/e2e.js';
import { readReported, waitFor } from './helpers/mqtt-client.js';

const e2e = e2eSetup({ 'silero-vad': { versions: { 1: MODEL_FILES.sileroVad16k }, config: shippedModelConfig('silero-vad') } });

async function push(store: string, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const c = spawnFleet(['push', '--url', e2e.broker.url, '--store', store, '--model', 'silero-vad', '--file', MODEL_FILES.sileroVad, ...args]);
  e2e.children.push(c);
  const { code } = await c.exited;
  return { code, stdout: c.stdout, stderr: c.stderr };
}

test('push --wait: progress, then active (0), failed (1), ignored (3), timeout (4)', async () => {
  const { broker } = e2e;
  const store = e2e.tempDir('perch-e2e-fleet-');
  const keys = join(e2e.tempDir('perch-e2e-keys-'), 'keys');
  assert.equal((await fleet(['keygen', '--out', keys])).code, 0);
  const { deviceId, configFile } = e2e.device('wait', {
    cloud: {
      trustedKeysFile: join(keys, 'signing-key.pub.pem'),
      // About 2.5 s for the 2.3 MB model: progress (once a second) shows at least once.
      download: { windowChunks: 4, maxBytesPerSecond: 1_000_000 },
    },
  });
  const serve = spawnFleet(['serve', '--url', broker.url, '--store', store, '--progress-ms', '0']);
  e2e.children.push(serve);
  await waitFor(() => !serve.running || serve.logLines().some((l) => l.msg === 'fleet serve ready'), 15_000, 'fleet serve ready');
  const device = await e2e.serve(configFile);
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
  const lost = e2e.tempDir('perch-e2e-fleet-lost-');
  const ignored = await push(lost, ['--device', deviceId, '--version', '4', ...signKey, '--wait', '--wait-timeout', '60']);
  assert.equal(ignored.code, 3, ignored.stderr);
  assert.equal(JSON.parse(ignored.stdout).version, 1);
  assert.match(ignored.stderr, /ignored: PERCH_ERR_DESIRED_STALE: desired version 1 is not above version 2/);
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
