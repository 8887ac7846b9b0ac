// A model update refused PERCH_ERR_MODEL_NO_SPACE is tried again once the disk would hold it,
// without a new desired document or a restart (space-wait.ts; docs/cloud-sync.md): a real tmpfs
// filled, then freed; state/reported goes failed (NO_SPACE) -> downloading -> active, and a
// model.update.retried event says so. Real Mosquitto, real SQLite store on the small disk.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, test } from 'node:test';
import { createCloudAgent } from '../../cloud-sync/agent/index.js';
import { topics } from '../../cloud-sync/protocol/index.js';
import { startMosquitto, type Mosquitto } from '../helpers/mosquitto.js';
import { MODEL_FILES } from '../helpers/paths.js';
import { mountSmallDisk } from '../helpers/small-disk.js';
import { makeKeys, specFor, type TestKeys } from './helpers/models.js';
import { chunkResponder, connectClient, PREFIX, publishDesired, waitFor } from './helpers/mqtt-client.js';
import { makePort } from './helpers/port.js';

const MODEL = readFileSync(MODEL_FILES.sileroVad);
const CHUNK = 64 * 1024;
let broker: Mosquitto;
let keys: TestKeys;

before(async () => {
  broker = await startMosquitto();
  keys = makeKeys();
});
after(async () => {
  await broker.close();
});

type Entry = { status: string; version: number; error?: { code: string } };

test('a full disk, then room again: the refused update is tried again by itself and installs', async (t) => {
  const disk = mountSmallDisk(24 * 1024 * 1024);
  if (typeof disk === 'string') {
    t.skip(disk);
    return;
  }
  const port = makePort({ mqttUrl: broker.url, dataDir: disk.dir, cloud: { trustedKeysFile: keys.trustedKeysFile, download: { diskHeadroomBytes: 1024 * 1024 } } });
  port.models.seed('vad', 1);
  const agent = createCloudAgent(port.port, { chunkTimeoutMs: 300, spaceWait: { firstMs: 100, maxMs: 400 } });
  const responder = await chunkResponder(broker.url, port.port.device.id, 'vad', 2, MODEL, CHUNK);
  // Every state/reported the device publishes, in order.
  const seen: Entry[] = [];
  const watcher = await connectClient(broker.url);
  watcher.on('message', (_topic, payload) => {
    if (payload.length === 0) return;
    const vad = (JSON.parse(payload.toString()) as { models?: Record<string, Entry> }).models?.vad;
    if (vad) seen.push(vad);
  });
  await watcher.subscribeAsync(topics(PREFIX, port.port.device.id).reported, { qos: 1 });
  try {
    await agent.start(new AbortController().signal);
    await waitFor(() => agent.online, 5000, 'online');
    disk.fill(); // another writer took the disk
    await publishDesired(broker.url, port.port.device.id, { version: 1, models: { vad: specFor('vad', 2, MODEL, keys, CHUNK) } });
    await waitFor(() => seen.some((e) => e.status === 'failed' && e.error?.code === 'PERCH_ERR_MODEL_NO_SPACE'), 60_000, 'failed NO_SPACE reported');
    assert.equal(responder.requested, 0, 'refused before any chunk');
    const before = seen.length;
    disk.unfill(); // room again; no new document, no restart
    await waitFor(() => port.models.installs.length === 1, 60_000, 'installed once there is room');
    const retried = port.events.find((e) => e.type === 'model.update.retried');
    assert.deepEqual(retried?.payload, { model: 'vad', version: 2, sha256: specFor('vad', 2, MODEL, null).sha256, code: 'PERCH_ERR_MODEL_NO_SPACE', attempt: 1 });
    await waitFor(() => seen.at(-1)?.status === 'active' && seen.at(-1)?.version === 2, 30_000, 'active 2 reported');
    const after = seen.slice(before).map((e) => e.status);
    assert.ok(after.includes('downloading'), `the retry is reported: ${after.join(' -> ')}`);
    assert.ok(after.indexOf('downloading') < after.lastIndexOf('active'), after.join(' -> '));
  } finally {
    await agent.stop();
    await watcher.endAsync(true);
    await responder.close();
    await port.close(false);
    disk.unmount();
  }
});
