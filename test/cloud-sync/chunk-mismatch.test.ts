// One chunk with wrong bytes is no longer final (docs/cloud-sync.md "Model updates"): a real
// Mosquitto and a real publisher answering the device's chunk requests, a copy of some chunk with
// one bit flipped (or a byte short). With the spec's chunkDigests the device drops the copy and
// asks for the chunk again after a backoff, so the update installs; it fails
// PERCH_ERR_MODEL_CHUNK_MISMATCH only at the bounds (one chunk wrong 4 times, 17 chunks wrong),
// keeps what it staged, and a later document resumes from it. The same over HTTP Range: a range
// answered with wrong bytes is asked for again from the wrong chunk. On main the wrong copy was
// staged and the whole download failed PERCH_ERR_MODEL_DIGEST_MISMATCH (or SIZE_MISMATCH for a
// short copy), and the version was not fetched again.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import { ChunkStore } from '../../cloud-sync/agent/model-update/chunk-store.js';
import { createCloudAgent, type CloudAgent } from '../../cloud-sync/agent/index.js';
import { MAX_BAD_CHUNKS, MAX_BAD_COPIES_PER_CHUNK } from '../../cloud-sync/agent/model-update/staged-download.js';
import type { ModelSpec } from '../../cloud-sync/protocol/index.js';
import { startMosquitto, type Mosquitto } from '../helpers/mosquitto.js';
import { MODEL_FILES } from '../helpers/paths.js';
import { makeKeys, specFor, type TestKeys } from './helpers/models.js';
import { chunkResponder, publishDesired, readReported, waitFor, type ChunkResponder } from './helpers/mqtt-client.js';
import { makePort, type TestPort } from './helpers/port.js';

const MODEL = readFileSync(MODEL_FILES.sileroVad); // 2.3 MB, 36 chunks of 64 KiB
const CHUNK = 64 * 1024;
const TOTAL = Math.ceil(MODEL.length / CHUNK);
const WAIT_MS = 60_000;
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

async function device(): Promise<Device> {
  const t = makePort({ mqttUrl: broker.url, cloud: { trustedKeysFile: keys.trustedKeysFile, download: { windowChunks: 8 } } });
  t.models.seed('vad', 1);
  const agent = createCloudAgent(t.port, { chunkTimeoutMs: 300 });
  await agent.start(new AbortController().signal);
  await waitFor(() => agent.online, WAIT_MS, 'online');
  const responder = await chunkResponder(broker.url, t.port.device.id, 'vad', 2, MODEL, CHUNK);
  return {
    t, agent, responder,
    close: async () => {
      await agent.stop();
      await responder.close();
      await t.close(true);
    },
  };
}

type Reported = { status: string; version: number; error?: { code: string; message: string }; active?: { version: number } | null };

async function reportedFailure(d: Device): Promise<Reported> {
  return waitFor(async () => {
    const vad = ((await readReported(broker.url, d.t.port.device.id))?.models as Record<string, Reported> | undefined)?.vad;
    return vad?.status === 'failed' && vad.version === 2 ? vad : null;
  }, WAIT_MS, 'vad v2 reported failed');
}

const spec = (): ModelSpec => specFor('vad', 2, MODEL, keys, CHUNK, { chunkDigests: true });
const applied = (d: Device): unknown[] => d.t.events.filter((e) => e.type === 'model.update.applied');

test('chunks with wrong bytes (one twice, one once) are dropped and asked for again: the update installs the right file', async () => {
  const d = await device();
  try {
    d.responder.corrupt = new Map([[5, 2], [20, 1]]);
    await publishDesired(broker.url, d.t.port.device.id, { version: 1, models: { vad: spec() } });
    await waitFor(() => d.t.models.installs.length === 1, WAIT_MS, 'install');
    assert.equal(d.t.models.installs[0]?.sha256, spec().sha256, 'the right bytes installed');
    // 3 wrong copies sent; one that comes while an earlier copy of its chunk is being hashed is a
    // duplicate (a re-request after the 300 ms chunk timeout can cross it), not counted.
    assert.deepEqual([...d.responder.corrupt.values()], [0, 0], 'every wrong copy was sent');
    const rejected = d.agent.stats().chunksRejected;
    assert.ok(rejected >= 2 && rejected <= 3, `${rejected} rejected`);
    assert.equal(applied(d).length, 1);
    assert.equal(d.t.events.filter((e) => e.type === 'model.update.failed').length, 0);
  } finally {
    await d.close();
  }
});

test('a copy one byte short is asked for again too, with or without chunkDigests (older fleets)', async () => {
  const d = await device();
  try {
    d.responder.short = true;
    d.responder.corrupt = new Map([[3, 1]]);
    await publishDesired(broker.url, d.t.port.device.id, { version: 1, models: { vad: specFor('vad', 2, MODEL, keys, CHUNK) } });
    await waitFor(() => d.t.models.installs.length === 1, WAIT_MS, 'install');
    assert.equal(d.agent.stats().chunksRejected, 1);
  } finally {
    await d.close();
  }
});

test(`a chunk wrong every time fails CHUNK_MISMATCH after ${MAX_BAD_COPIES_PER_CHUNK + 1} copies; v1 serves; the good chunks stay staged and the next document finishes from them`, async () => {
  const d = await device();
  try {
    d.responder.corrupt = new Map([[7, Infinity]]);
    await publishDesired(broker.url, d.t.port.device.id, { version: 1, models: { vad: spec() } });
    const rep = await reportedFailure(d);
    assert.equal(rep.error?.code, 'PERCH_ERR_MODEL_CHUNK_MISMATCH', JSON.stringify(rep.error));
    assert.equal(rep.active?.version, 1, 'v1 still serves');
    assert.equal(d.agent.stats().chunksRejected, MAX_BAD_COPIES_PER_CHUNK + 1);
    assert.equal(d.t.models.installs.length, 0);
    const staged = new ChunkStore(d.t.port.models.stagingDir, 'vad', 2, spec().sha256, CHUNK).scan(TOTAL);
    assert.ok(!staged.has(7), 'the wrong chunk was never staged');
    // The rest may still have been on its way when the download failed; most of it is staged.
    assert.ok(staged.size >= TOTAL / 2, `${staged.size} of ${TOTAL} chunks kept`);

    // Not refused for good: the next document tries again and asks only for what is missing.
    d.responder.corrupt.clear();
    const before = d.responder.requested;
    await publishDesired(broker.url, d.t.port.device.id, { version: 2, models: { vad: spec() } });
    await waitFor(() => d.t.models.installs.length === 1, WAIT_MS, 'install from the staged chunks');
    assert.ok(d.responder.requested - before <= TOTAL - staged.size, `asked for ${d.responder.requested - before} chunks, ${TOTAL - staged.size} were missing`);
  } finally {
    await d.close();
  }
});

test(`${MAX_BAD_CHUNKS + 1} different chunks wrong once each: CHUNK_MISMATCH at the bound`, async () => {
  const d = await device();
  try {
    d.responder.corrupt = new Map(Array.from({ length: MAX_BAD_CHUNKS + 1 }, (_, i) => [i * 2, 1] as [number, number]));
    await publishDesired(broker.url, d.t.port.device.id, { version: 1, models: { vad: spec() } });
    const rep = await reportedFailure(d);
    assert.equal(rep.error?.code, 'PERCH_ERR_MODEL_CHUNK_MISMATCH');
    assert.match(rep.error?.message ?? '', new RegExp(`${MAX_BAD_CHUNKS + 1} different chunks`));
    assert.equal(d.agent.stats().chunksRejected, MAX_BAD_CHUNKS + 1);
  } finally {
    await d.close();
  }
});

test('chunkDigests that cannot be the file\'s list: refused CHUNK_SIZE_INVALID before any chunk', async () => {
  const d = await device();
  try {
    const short = { ...spec(), chunkDigests: Buffer.alloc(32 * (TOTAL - 1)).toString('base64') };
    await publishDesired(broker.url, d.t.port.device.id, { version: 1, models: { vad: short } });
    const rep = await reportedFailure(d);
    assert.equal(rep.error?.code, 'PERCH_ERR_MODEL_CHUNK_SIZE_INVALID');
    assert.equal(d.responder.requested, 0);
  } finally {
    await d.close();
  }
});

/** Serves MODEL with Range; the answer holding chunk `bad` has one bit flipped the first `times` times. */
async function rangeServer(bad: number, times: number): Promise<{ server: Server; url: string; wrong: () => number }> {
  let wrong = 0;
  const server = createServer((req, res) => {
    const m = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '');
    const start = Number(m?.[1] ?? 0);
    const end = Math.min(MODEL.length - 1, Number(m?.[2] ?? MODEL.length - 1));
    const body = Buffer.from(MODEL.subarray(start, end + 1));
    const at = bad * CHUNK + 100;
    if (at >= start && at <= end && wrong < times) {
      wrong++;
      body[at - start] = (body[at - start] ?? 0) ^ 0x01;
    }
    res.writeHead(206, { 'content-range': `bytes ${start}-${end}/${MODEL.length}`, 'content-length': body.length });
    res.end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/vad/2/model.onnx`, wrong: () => wrong };
}

test('over HTTP: a range answered with wrong bytes is asked for again from the wrong chunk; the update installs', async () => {
  const d = await device();
  const http = await rangeServer(12, 2);
  try {
    await publishDesired(broker.url, d.t.port.device.id, { version: 1, models: { vad: { ...spec(), url: http.url } } });
    await waitFor(() => d.t.models.installs.length === 1, WAIT_MS, 'install');
    assert.equal(d.t.models.installs[0]?.sha256, spec().sha256);
    assert.equal(http.wrong(), 2);
    assert.equal(d.agent.stats().chunksRejected, 2);
  } finally {
    await d.close();
    await new Promise((resolve) => http.server.close(resolve));
  }
});

test('over HTTP: a range wrong every time fails CHUNK_MISMATCH at the bound, v1 serves', async () => {
  const d = await device();
  const http = await rangeServer(12, Infinity);
  try {
    await publishDesired(broker.url, d.t.port.device.id, { version: 1, models: { vad: { ...spec(), url: http.url } } });
    const rep = await reportedFailure(d);
    assert.equal(rep.error?.code, 'PERCH_ERR_MODEL_CHUNK_MISMATCH', JSON.stringify(rep.error));
    assert.equal(rep.active?.version, 1);
    assert.equal(d.agent.stats().chunksRejected, MAX_BAD_COPIES_PER_CHUNK + 1);
  } finally {
    await d.close();
    await new Promise((resolve) => http.server.close(resolve));
  }
});
