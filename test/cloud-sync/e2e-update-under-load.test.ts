// End to end against a real runtime (cloud sync on) and a real Mosquitto, while a client keeps
// inferring: a file with the wrong SHA-256 and a signed file that does not load are refused with
// their codes in state/reported, then a good version is swapped in hot; the client sees zero
// failed requests throughout.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { after, before, test } from 'node:test';
import { startMosquitto, type Mosquitto } from '../helpers/mosquitto.js';
import { httpInfer } from '../helpers/clients.js';
import { randomFp32 } from '../helpers/models.js';
import { MODEL_FILES } from '../helpers/paths.js';
import { shippedModelConfig, TempRepository } from '../helpers/repository.js';
import { startRuntime, type TestRuntime } from '../helpers/runtime.js';
import { makeKeys, sha256, specFor } from './helpers/models.js';
import { chunkResponder, publishDesired, readReported, waitFor, type ChunkResponder } from './helpers/mqtt-client.js';

const MODEL = readFileSync(MODEL_FILES.ocrCls);
const CHUNK = 64 * 1024;

let broker: Mosquitto;
let repo: TempRepository;
before(async () => {
  broker = await startMosquitto();
  repo = new TempRepository({ cls: { versions: { 1: MODEL_FILES.ocrCls }, config: shippedModelConfig('pp-ocr-cls') } });
});
after(async () => {
  await broker.close();
  repo.remove();
});

type Reported = { desiredVersion: number; models: Record<string, { version: number; status: string; error?: { code: string } }> };

test('refused updates and a hot swap under load: zero failed requests', async () => {
  const deviceId = `load-${randomUUID().slice(0, 8)}`;
  const keys = makeKeys();
  const responders: ChunkResponder[] = [];
  let rt: TestRuntime | null = null;
  let running = true;
  const results = { ok: 0, failed: [] as unknown[] };
  try {
    rt = await startRuntime(repo.dir, { device: { id: deviceId }, cloud: { mqttUrl: broker.url, trustedKeysFile: keys.trustedKeysFile, reconnect: { minMs: 50, maxMs: 400 } } });
    const { baseUrl, runtime } = rt;
    await waitFor(() => runtime.status().connectivity === 'online', 10_000, 'online');
    const input = [randomFp32('x', [1, 3, 48, 192], 3)];
    const client = (async () => {
      while (running) {
        const a = await httpInfer(baseUrl, 'cls', input);
        if (a.status === 200) results.ok++;
        else results.failed.push(a.body);
      }
    })();

    // 1. Wrong SHA-256: the signature covers the wrong digest, so only the digest check can tell.
    const bad = Buffer.from(MODEL);
    bad.writeUInt8((bad.readUInt8(bad.length - 10) ^ 0xff) & 0xff, bad.length - 10);
    responders.push(await chunkResponder(broker.url, deviceId, 'cls', 2, bad, CHUNK));
    await publishDesired(broker.url, deviceId, { version: 1, models: { cls: specFor('cls', 2, MODEL, keys, CHUNK) } });
    const r1 = await waitFor(async () => {
      const r = (await readReported(broker.url, deviceId)) as Reported | null;
      return r?.desiredVersion === 1 && r.models.cls?.status === 'failed' ? r : null;
    }, 15_000, 'digest refusal reported');
    assert.equal(r1.models.cls?.error?.code, 'PERCH_ERR_MODEL_DIGEST_MISMATCH');

    // 2. Signed and intact, but not an ONNX model: the runtime's load step refuses it.
    const garbage = Buffer.alloc(100_000, 7);
    responders.push(await chunkResponder(broker.url, deviceId, 'cls', 3, garbage, CHUNK));
    await publishDesired(broker.url, deviceId, { version: 2, models: { cls: specFor('cls', 3, garbage, keys, CHUNK) } });
    const r2 = await waitFor(async () => {
      const r = (await readReported(broker.url, deviceId)) as Reported | null;
      return r?.desiredVersion === 2 && r.models.cls?.status === 'failed' && r.models.cls.version === 3 ? r : null;
    }, 15_000, 'load refusal reported');
    assert.equal(r2.models.cls?.error?.code, 'PERCH_ERR_MODEL_LOAD_FAILED');

    // 3. A good version, swapped in hot.
    responders.push(await chunkResponder(broker.url, deviceId, 'cls', 4, MODEL, CHUNK));
    await publishDesired(broker.url, deviceId, { version: 3, models: { cls: specFor('cls', 4, MODEL, keys, CHUNK) } });
    await waitFor(async () => {
      const r = (await readReported(broker.url, deviceId)) as Reported | null;
      return r?.desiredVersion === 3 && r.models.cls?.status === 'active' && r.models.cls.version === 4;
    }, 20_000, 'v4 active');
    assert.equal((await fetch(`${baseUrl}/v2/models/cls/versions/4/ready`)).status, 200);
    assert.equal(runtime.installer.served().find((m) => m.name === 'cls')?.sha256, sha256(MODEL));
    running = false;
    await client;
    assert.deepEqual(results.failed, [], 'no request failed');
    assert.ok(results.ok > 20, `${results.ok} requests answered`);
  } finally {
    running = false;
    for (const r of responders) await r.close();
    await rt?.stop();
  }
});
