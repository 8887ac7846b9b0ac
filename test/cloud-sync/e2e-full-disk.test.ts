// End to end with a real `perch serve` on a real full disk (a small tmpfs): one desired document
// naming an unsigned 10 GB model used to fill a device's disk, exit 1 (`state set
// cloud.models.status: database or disk is full`) and crash-loop at every restart. Now the
// update is refused before any chunk, a full disk during an update is reported, and a device
// SIGKILLed and started again on the full disk serves.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { MODEL_FILES } from '../helpers/paths.js';
import { shippedModelConfig } from '../helpers/repository.js';
import { mountSmallDisk } from '../helpers/small-disk.js';
import { e2eSetup } from './helpers/e2e.js';
import { makeKeys, specFor } from './helpers/models.js';
import { chunkResponder, publishDesired, readReported, waitFor } from './helpers/mqtt-client.js';

const MODEL = readFileSync(MODEL_FILES.sileroVad16k);
const CHUNK = 64 * 1024;

const e2e = e2eSetup({ 'silero-vad': { versions: { 1: MODEL_FILES.sileroVad16k }, config: shippedModelConfig('silero-vad') } });

type Reported = { status: string; version: number; error?: { code: string } };
const reportedVad = async (deviceId: string): Promise<Reported | undefined> =>
  ((await readReported(e2e.broker.url, deviceId))?.models as Record<string, Reported> | undefined)?.['silero-vad'];

test('a device on a full disk refuses updates by code, keeps serving, and starts again after a SIGKILL', async (t) => {
  const disk = mountSmallDisk(32 * 1024 * 1024);
  if (typeof disk === 'string') {
    t.skip(disk);
    return;
  }
  try {
    const keys = makeKeys();
    const { broker } = e2e;
    const { deviceId, configFile } = e2e.device('disk', {
      dataDir: join(disk.dir, 'data'), file: join(disk.dir, 'perch.json'), cloud: { trustedKeysFile: keys.trustedKeysFile },
    });
    const first = await e2e.serve(configFile);
    const responder = await chunkResponder(broker.url, deviceId, 'silero-vad', 2, MODEL, CHUNK);
    try {
      // One message naming an unsigned 10 GB model: refused before any chunk is asked for.
      const huge = { version: 2, sha256: 'ab'.repeat(32), size: 10 * 1024 ** 3, chunkSize: CHUNK };
      await publishDesired(broker.url, deviceId, { version: 1, models: { 'silero-vad': huge } });
      await waitFor(async () => (await reportedVad(deviceId))?.error?.code === 'PERCH_ERR_MODEL_UNSIGNED', 15_000, 'refused unsigned');
      assert.equal(responder.requested, 0);
      assert.equal((await fetch(`${first.baseUrl}/v2/models/silero-vad/ready`)).status, 200, 'v1 still serves');

      // The disk fills up; a real signed update is refused for space, and the process goes on.
      disk.fill();
      await publishDesired(broker.url, deviceId, { version: 2, models: { 'silero-vad': specFor('silero-vad', 2, MODEL, keys, CHUNK) } });
      await waitFor(async () => (await reportedVad(deviceId))?.error?.code === 'PERCH_ERR_MODEL_NO_SPACE', 15_000, 'refused for space');
      assert.equal(responder.requested, 0);
      assert.ok(first.child.running, `perch exited:\n${first.child.stderr}`);
      assert.equal((await fetch(`${first.baseUrl}/v2/models/silero-vad/ready`)).status, 200);
    } finally {
      await responder.close();
    }

    // A power cut, and a start on the still-full disk: it serves (no crash loop).
    await first.child.kill();
    const second = await e2e.serve(configFile);
    assert.equal((await fetch(`${second.baseUrl}/v2/models/silero-vad/ready`)).status, 200);
    await waitFor(async () => (await reportedVad(deviceId))?.status === 'failed', 15_000, 'reported again after the restart');
    assert.ok(second.child.running);
  } finally {
    for (const c of e2e.children) await c.kill();
    disk.unmount();
  }
});
