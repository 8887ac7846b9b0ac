// Model updates are checked before they cost anything (issue: one MQTT message naming a huge
// unsigned model filled a device's disk and crash-looped it): version, signature (manifest 1
// and 2) and space are refused with their codes before the first chunk is asked for, staged
// bytes of a refused update are removed, and a store that cannot write does not stop the agent.
// Real Mosquitto, real SQLite store (on a real full tmpfs where the disk must be full).
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { createCloudAgent, type CloudAgent } from '../../cloud-sync/agent/index.js';
import { sign, signManifest } from '../../cloud-sync/protocol/index.js';
import { startMosquitto, type Mosquitto } from '../helpers/mosquitto.js';
import { MODEL_FILES } from '../helpers/paths.js';
import { mountSmallDisk } from '../helpers/small-disk.js';
import { makeKeys, sha256, specFor, type TestKeys } from './helpers/models.js';
import { chunkResponder, publishDesired, readReported, waitFor, type ChunkResponder } from './helpers/mqtt-client.js';
import { makePort, type TestPort } from './helpers/port.js';

const MODEL = readFileSync(MODEL_FILES.sileroVad);
const CHUNK = 64 * 1024;
const GB10 = 10 * 1024 ** 3;
let broker: Mosquitto;
let keys: TestKeys;

before(async () => {
  broker = await startMosquitto();
  keys = makeKeys();
});
after(async () => {
  await broker.close();
});

interface Device {
  t: TestPort;
  agent: CloudAgent;
  responder: ChunkResponder;
  close(): Promise<void>;
}

async function device(opts: { seedVersion?: number; dataDir?: string; cloud?: Record<string, unknown> } = {}): Promise<Device> {
  const t = makePort({
    mqttUrl: broker.url,
    ...(opts.dataDir ? { dataDir: opts.dataDir } : {}),
    cloud: { trustedKeysFile: keys.trustedKeysFile, ...opts.cloud },
  });
  t.models.seed('vad', opts.seedVersion ?? 1);
  const agent = createCloudAgent(t.port, { chunkTimeoutMs: 300 });
  await agent.start(new AbortController().signal);
  await waitFor(() => agent.online, 5000, 'online');
  // Answers for every version the tests name (2 and 3): counts what the device asks for.
  const responder = await chunkResponder(broker.url, t.port.device.id, 'vad', 2, MODEL, CHUNK);
  return {
    t,
    agent,
    responder,
    close: async () => {
      await agent.stop();
      await responder.close();
      await t.close(!opts.dataDir);
    },
  };
}

type Reported = { status: string; version: number; error?: { code: string }; active?: { version: number } | null };

async function reportedFailure(d: Device, version: number): Promise<Reported> {
  return waitFor(async () => {
    const r = await readReported(broker.url, d.t.port.device.id);
    const vad = (r?.models as Record<string, Reported> | undefined)?.vad;
    return vad?.status === 'failed' && vad.version === version ? vad : null;
  }, 60_000, `vad v${version} reported failed`);
}

function stagingOf(d: Device): string[] {
  const dir = join(d.t.port.models.stagingDir, 'vad');
  return existsSync(dir) ? readdirSync(dir) : [];
}

test('an unsigned 10 GB model on a device requiring signatures: refused UNSIGNED, nothing asked for, the device goes on', async () => {
  const d = await device();
  try {
    const huge = { version: 2, sha256: 'ab'.repeat(32), size: GB10, chunkSize: CHUNK };
    await publishDesired(broker.url, d.t.port.device.id, { version: 1, models: { vad: huge } });
    const rep = await reportedFailure(d, 2);
    assert.equal(rep.error?.code, 'PERCH_ERR_MODEL_UNSIGNED');
    assert.equal(rep.active?.version, 1, 'v1 still serves');
    assert.equal(d.agent.stats().chunksRequested, 0, 'no chunk asked for');
    assert.equal(d.responder.requested, 0);
    assert.deepEqual(stagingOf(d), [], 'nothing staged');
    // And it keeps working: a real signed update right after installs.
    await publishDesired(broker.url, d.t.port.device.id, { version: 2, models: { vad: specFor('vad', 2, MODEL, keys, CHUNK) } });
    await waitFor(() => d.t.models.installs.length === 1, 15_000, 'the next update installs');
  } finally {
    await d.close();
  }
});

test('a signed model over cloud.download.maxModelBytes: refused TOO_LARGE before any chunk', async () => {
  const d = await device();
  try {
    const digest = 'cd'.repeat(32);
    const spec = { version: 2, sha256: digest, size: GB10, chunkSize: CHUNK, signature: sign(keys.privateKeyPem, 'vad', 2, digest, GB10) };
    await publishDesired(broker.url, d.t.port.device.id, { version: 1, models: { vad: spec } });
    assert.equal((await reportedFailure(d, 2)).error?.code, 'PERCH_ERR_MODEL_TOO_LARGE');
    assert.equal(d.responder.requested, 0);
    assert.deepEqual(stagingOf(d), []);
  } finally {
    await d.close();
  }
});

test('chunkSize is not signed: one that makes over a million chunks, or a chunk over 4 MiB, is refused CHUNK_SIZE_INVALID before any chunk', async () => {
  const d = await device();
  try {
    // The signed spec of a real file, replayed with chunkSize 1: 2.3 million chunks (each a
    // journal record, a request and a message) for a 2.3 MB model.
    const tiny = { ...specFor('vad', 2, MODEL, keys, CHUNK), chunkSize: 1 };
    await publishDesired(broker.url, d.t.port.device.id, { version: 1, models: { vad: tiny } });
    const rep = await reportedFailure(d, 2);
    assert.equal(rep.error?.code, 'PERCH_ERR_MODEL_CHUNK_SIZE_INVALID', JSON.stringify(rep.error));
    // A signed 64 MiB model in one 64 MiB chunk: windowChunks of them would be held in memory.
    const digest = '12'.repeat(32);
    const size = 64 * 1024 * 1024;
    const big = { version: 3, sha256: digest, size, chunkSize: size, signature: sign(keys.privateKeyPem, 'vad', 3, digest, size) };
    await publishDesired(broker.url, d.t.port.device.id, { version: 2, models: { vad: big } });
    assert.equal((await reportedFailure(d, 3)).error?.code, 'PERCH_ERR_MODEL_CHUNK_SIZE_INVALID');
    assert.equal(d.agent.stats().chunksRequested, 0, 'no chunk asked for');
    assert.equal(d.responder.requested, 0);
    assert.deepEqual(stagingOf(d), [], 'nothing staged');
    // The same file with a sane chunkSize installs.
    await publishDesired(broker.url, d.t.port.device.id, { version: 3, models: { vad: specFor('vad', 2, MODEL, keys, CHUNK) } });
    await waitFor(() => d.t.models.installs.length === 1, 15_000, 'the update with a sane chunkSize installs');
  } finally {
    await d.close();
  }
});

test('a signed model larger than the free disk space: refused NO_SPACE before any chunk', async () => {
  const d = await device({ cloud: { download: { maxModelBytes: 2 ** 52 } } });
  try {
    const digest = 'ef'.repeat(32);
    const size = 2 ** 50; // 1 PiB
    const spec = { version: 2, sha256: digest, size, chunkSize: CHUNK, signature: sign(keys.privateKeyPem, 'vad', 2, digest, size) };
    await publishDesired(broker.url, d.t.port.device.id, { version: 1, models: { vad: spec } });
    assert.equal((await reportedFailure(d, 2)).error?.code, 'PERCH_ERR_MODEL_NO_SPACE');
    assert.equal(d.responder.requested, 0);
  } finally {
    await d.close();
  }
});

test('a version lower than the one serving (a replayed old signed spec) is refused DOWNGRADE and reported', async () => {
  const d = await device({ seedVersion: 3 });
  try {
    await publishDesired(broker.url, d.t.port.device.id, { version: 7, models: { vad: specFor('vad', 2, MODEL, keys, CHUNK) } });
    const rep = await reportedFailure(d, 2);
    assert.equal(rep.error?.code, 'PERCH_ERR_MODEL_DOWNGRADE');
    assert.equal(rep.active?.version, 3);
    assert.equal(d.responder.requested, 0);
    assert.deepEqual(d.t.models.served().map((m) => m.version), [3]);
    await waitFor(() => d.t.events.some((e) => e.type === 'model.update.failed' && (e.payload as { code: string }).code === 'PERCH_ERR_MODEL_DOWNGRADE'), 2000, 'event');
  } finally {
    await d.close();
  }
});

test('a manifest 1 signature with a model.json added (an unsigned version policy) is refused CONFIG_UNSIGNED', async () => {
  const d = await device();
  try {
    const replayed = { ...specFor('vad', 2, MODEL, keys, CHUNK), config: { versionPolicy: { specific: { versions: [1] } } } };
    await publishDesired(broker.url, d.t.port.device.id, { version: 1, models: { vad: replayed } });
    assert.equal((await reportedFailure(d, 2)).error?.code, 'PERCH_ERR_MODEL_CONFIG_UNSIGNED');
    assert.equal(d.responder.requested, 0);
  } finally {
    await d.close();
  }
});

test('manifest 2 covers the model.json: the signed one installs, a changed one is refused SIGNATURE_INVALID', async () => {
  const d = await device();
  try {
    const base = specFor('vad', 2, MODEL, null, CHUNK);
    const config = { name: 'vad', versionPolicy: { latest: { numVersions: 1 } } };
    const signed = { ...base, ...signManifest(keys.privateKeyPem, 'vad', { ...base, config }), config };
    const tampered = { ...signed, config: { ...config, versionPolicy: { specific: { versions: [1] } } } };
    await publishDesired(broker.url, d.t.port.device.id, { version: 1, models: { vad: tampered } });
    assert.equal((await reportedFailure(d, 2)).error?.code, 'PERCH_ERR_MODEL_SIGNATURE_INVALID');
    assert.equal(d.responder.requested, 0);
    // Key order of the model.json does not matter: the digest is over canonical JSON.
    const reordered = { ...signed, config: { versionPolicy: { latest: { numVersions: 1 } }, name: 'vad' } };
    await publishDesired(broker.url, d.t.port.device.id, { version: 2, models: { vad: reordered } });
    await waitFor(() => d.t.models.installs.length === 1, 15_000, 'signed model.json installs');
    assert.deepEqual(d.t.models.installs[0]?.modelJson, reordered.config);
    assert.equal(d.t.models.installs[0]?.sha256, sha256(MODEL));
  } finally {
    await d.close();
  }
});

test('a store that cannot write (full disk) during an update does not stop the agent; a refused update leaves no staged bytes', async (t) => {
  const disk = mountSmallDisk(24 * 1024 * 1024);
  if (typeof disk === 'string') {
    t.skip(disk);
    return;
  }
  const d = await device({ dataDir: disk.dir, cloud: { download: { diskHeadroomBytes: 1024 * 1024 } } });
  try {
    disk.fill(16 * 1024); // a few pages left: SQLite's next commit fails with SQLITE_FULL
    await publishDesired(broker.url, d.t.port.device.id, { version: 1, models: { vad: specFor('vad', 2, MODEL, keys, CHUNK) } });
    const rep = await reportedFailure(d, 2);
    assert.equal(rep.error?.code, 'PERCH_ERR_MODEL_NO_SPACE');
    assert.equal(d.responder.requested, 0);
    assert.deepEqual(stagingOf(d), []);
    assert.ok(d.agent.online, 'still connected');
    // Space again: the same desired model, in a new document, installs.
    disk.unfill();
    await publishDesired(broker.url, d.t.port.device.id, { version: 2, models: { vad: specFor('vad', 2, MODEL, keys, CHUNK) } });
    await waitFor(() => d.t.models.installs.length === 1, 60_000, 'installs once there is space');
  } finally {
    await d.close();
    disk.unmount();
  }
});

test('the disk filling during the download: refused NO_SPACE, the staged bytes given back, installed once there is room', async (t) => {
  const disk = mountSmallDisk(24 * 1024 * 1024);
  if (typeof disk === 'string') {
    t.skip(disk);
    return;
  }
  const d = await device({ dataDir: disk.dir, cloud: { download: { diskHeadroomBytes: 1024 * 1024 } } });
  try {
    d.responder.limit = 4; // a few chunks, then silence while the disk fills
    await publishDesired(broker.url, d.t.port.device.id, { version: 1, models: { vad: specFor('vad', 2, MODEL, keys, CHUNK) } });
    const journal = (): string | null => {
      const [dir] = stagingOf(d);
      return dir ? join(d.t.port.models.stagingDir, 'vad', dir, 'staged.log') : null;
    };
    await waitFor(() => {
      const j = journal();
      return j !== null && existsSync(j) && readFileSync(j).length >= 8;
    }, 60_000, 'a chunk staged durably');
    disk.fill(); // another writer takes the rest of the disk after check-space passed
    d.responder.limit = null; // the chunks asked for again now arrive, and cannot be written
    const rep = await reportedFailure(d, 2);
    assert.equal(rep.error?.code, 'PERCH_ERR_MODEL_NO_SPACE', JSON.stringify(rep));
    assert.deepEqual(stagingOf(d), [], 'the staged chunks are removed: the space goes back to the store');
    assert.ok(d.agent.online, 'still connected');
    assert.equal(d.t.models.installs.length, 0);
    // Room again: the same file, in a new document, is checked and fetched again (NO_SPACE is not final).
    disk.unfill();
    await publishDesired(broker.url, d.t.port.device.id, { version: 2, models: { vad: specFor('vad', 2, MODEL, keys, CHUNK) } });
    await waitFor(() => d.t.models.installs.length === 1, 60_000, 'installs once there is space');
  } finally {
    await d.close();
    disk.unmount();
  }
});

test("a name the runtime cannot install under (':' is the protocol's, not the repository's): refused CONFIG_INVALID before any chunk", async () => {
  const d = await device();
  const odd = await chunkResponder(broker.url, d.t.port.device.id, 'vad:2', 2, MODEL, CHUNK);
  try {
    await publishDesired(broker.url, d.t.port.device.id, { version: 1, models: { 'vad:2': specFor('vad:2', 2, MODEL, keys, CHUNK) } });
    const rep = await waitFor(async () => {
      const r = await readReported(broker.url, d.t.port.device.id);
      const m = (r?.models as Record<string, Reported> | undefined)?.['vad:2'];
      return m?.status === 'failed' ? m : null;
    }, 60_000, 'vad:2 reported failed');
    assert.equal(rep.error?.code, 'PERCH_ERR_MODEL_CONFIG_INVALID');
    assert.equal(odd.requested, 0, 'not one chunk asked for');
    assert.equal(d.agent.stats().chunksRequested, 0);
    assert.ok(!existsSync(join(d.t.port.models.stagingDir, 'vad:2')), 'nothing staged');
  } finally {
    await odd.close();
    await d.close();
  }
});

test('two models that each fit the free disk but not both: the second is refused NO_SPACE before any chunk, the first installs', async (t) => {
  const disk = mountSmallDisk(24 * 1024 * 1024);
  if (typeof disk === 'string') {
    t.skip(disk);
    return;
  }
  const headroom = 1024 * 1024;
  const d = await device({ dataDir: disk.dir, cloud: { download: { diskHeadroomBytes: headroom } } });
  const other = await chunkResponder(broker.url, d.t.port.device.id, 'vad2', 2, MODEL, CHUNK);
  try {
    // One needs its download, its install copy and the headroom; two need twice the file more.
    disk.fill(2 * MODEL.length + headroom + MODEL.length);
    await publishDesired(broker.url, d.t.port.device.id, {
      version: 1,
      models: { vad: specFor('vad', 2, MODEL, keys, CHUNK), vad2: specFor('vad2', 2, MODEL, keys, CHUNK) },
    });
    const refused = await waitFor(async () => {
      const r = (await readReported(broker.url, d.t.port.device.id))?.models as Record<string, Reported> | undefined;
      const failed = Object.entries(r ?? {}).filter(([, m]) => m.status === 'failed');
      return failed.length > 0 ? failed : null;
    }, 60_000, 'one model reported failed');
    assert.equal(refused.length, 1);
    const [name, rep] = refused[0]!;
    assert.equal(rep.error?.code, 'PERCH_ERR_MODEL_NO_SPACE', JSON.stringify(rep));
    assert.equal((name === 'vad' ? d.responder : other).requested, 0, `no chunk of ${name} asked for`);
    await waitFor(() => d.t.models.installs.length === 1, 60_000, 'the other installs');
    assert.notEqual(d.t.models.installs[0]?.name, name);
  } finally {
    await other.close();
    await d.close();
    disk.unmount();
  }
});
