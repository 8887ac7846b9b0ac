// End to end with real processes: a real `perch serve` device, a real `perch fleet serve`, a real
// Mosquitto, `perch fleet push --wait`, and a hostile peer with publish rights on the device's
// chunk topics. At the device's first chunk request it publishes wrong copies (one bit flipped)
// of five chunks the device has not asked for yet. `perch fleet push` lists each chunk's digest
// (chunkDigests), so the device drops the five, asks for them again and installs: push exits 0.
// On main the wrong copies were staged and the update failed PERCH_ERR_MODEL_DIGEST_MISMATCH,
// final for that version (push exit 1).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { topics, type ModelSpec } from '../../cloud-sync/protocol/index.js';
import { fleet, spawnFleet } from '../fleet/harness.js';
import { MODEL_FILES } from '../helpers/paths.js';
import { shippedModelConfig } from '../helpers/repository.js';
import { e2eSetup } from './helpers/e2e.js';
import { connectClient, PREFIX, readReported, readRetained, waitFor } from './helpers/mqtt-client.js';

const e2e = e2eSetup({ 'silero-vad': { versions: { 1: MODEL_FILES.sileroVad16k }, config: shippedModelConfig('silero-vad') } });
const MODEL = readFileSync(MODEL_FILES.sileroVad); // 36 chunks of 64 KiB
const CHUNK = 64 * 1024;
const WRONG = [30, 31, 32, 33, 34];

test('a peer publishing wrong chunk copies: the device drops them, asks again and installs (push --wait 0)', async () => {
  const { broker } = e2e;
  const store = e2e.tempDir('perch-e2e-fleet-');
  const keys = join(e2e.tempDir('perch-e2e-keys-'), 'keys');
  assert.equal((await fleet(['keygen', '--out', keys])).code, 0);
  const { deviceId, configFile } = e2e.device('hostile', {
    // Slow enough that chunks 30-34 are asked for seconds after the first request.
    cloud: { trustedKeysFile: join(keys, 'signing-key.pub.pem'), download: { windowChunks: 4, maxBytesPerSecond: 1_000_000 } },
  });
  const serve = spawnFleet(['serve', '--url', broker.url, '--store', store, '--progress-ms', '0']);
  e2e.children.push(serve);
  await waitFor(() => !serve.running || serve.logLines().some((l) => l.msg === 'fleet serve ready'), 15_000, 'fleet serve ready');
  const device = await e2e.serve(configFile);
  await waitFor(async () => (await readReported(broker.url, deviceId))?.desiredVersion === 0, 15_000, 'device reported');

  const t = topics(PREFIX, deviceId);
  const hostile = await connectClient(broker.url, { clientId: `hostile-${deviceId}` });
  let sent = false;
  hostile.on('message', () => {
    if (sent) return;
    sent = true;
    for (const i of WRONG) {
      const copy = Buffer.from(MODEL.subarray(i * CHUNK, (i + 1) * CHUNK));
      copy[100] = (copy[100] ?? 0) ^ 0x01;
      hostile.publish(t.chunk('silero-vad', 2, i), copy, { qos: 1 });
    }
  });
  await hostile.subscribeAsync(t.modelsRequest, { qos: 1 });
  try {
    const push = spawnFleet(['push', '--url', broker.url, '--store', store, '--device', deviceId, '--model', 'silero-vad', '--version', '2',
      '--file', MODEL_FILES.sileroVad, '--sign-key', join(keys, 'signing-key.pem'), '--wait', '--wait-timeout', '90']);
    e2e.children.push(push);
    const { code } = await push.exited;
    assert.equal(code, 0, push.stderr);
    assert.ok(sent, 'the wrong copies went out');
    const spec = ((await readRetained(broker.url, t.desired))?.models as Record<string, ModelSpec>)['silero-vad'];
    assert.equal(Buffer.from(spec?.chunkDigests ?? '', 'base64').length, 36 * 32, 'push listed each chunk\'s digest');
    const dropped = device.child.logLines().filter((l) => l.msg === 'chunk with wrong bytes dropped').map((l) => l.index);
    assert.deepEqual(dropped.sort(), WRONG, 'each wrong copy dropped once');
    assert.equal((await fetch(`${device.baseUrl}/v2/models/silero-vad/versions/2/ready`)).status, 200, 'version 2 serves');
  } finally {
    await hostile.endAsync(true);
  }
});
