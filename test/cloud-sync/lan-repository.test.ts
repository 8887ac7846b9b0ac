// A device managed on the LAN through the model repository extension (POST /v2/repository/...)
// and by the cloud at once (docs/models.md "Managed on the LAN, with or without a cloud"):
// state/reported follows local loads and unloads at once; a cloud update older than the
// locally loaded version is refused as a downgrade; a newer one installs into the same
// repository folder; after a restart the folder wins (a local unload is forgotten, every
// version on disk is there again, the cloud's applied document is not re-applied).
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { startMosquitto, type Mosquitto } from '../helpers/mosquitto.js';
import { MODEL_FILES } from '../helpers/paths.js';
import { TempRepository } from '../helpers/repository.js';
import { startRuntime, type TestRuntime } from '../helpers/runtime.js';
import { chunkResponder, publishDesired, readReported, waitFor } from './helpers/mqtt-client.js';
import { makeKeys, sha256, specFor, type TestKeys } from './helpers/models.js';

type Reported = { desiredVersion: number; models: Record<string, { version: number; sha256: string; status: string; error?: { code: string }; active?: { version: number } | null }> };

let broker: Mosquitto;
let keys: TestKeys;
before(async () => {
  broker = await startMosquitto();
  keys = makeKeys();
});
after(() => broker.close());

test('LAN repository calls and cloud updates on one device: reported state, downgrade, restart', async () => {
  const deviceId = `lan-${randomUUID().slice(0, 8)}`;
  const repo = new TempRepository({ cls: { versions: { 1: MODEL_FILES.ocrCls } } });
  const dataDir = mkdtempSync(join(tmpdir(), 'perch-lan-'));
  const bytes = readFileSync(MODEL_FILES.ocrCls);
  const config = { device: { id: deviceId }, dataDir, cloud: { mqttUrl: broker.url, trustedKeysFile: keys.trustedKeysFile } };
  let rt: TestRuntime = await startRuntime(repo.dir, config);
  const reported = (check: (r: Reported) => boolean, what: string): Promise<Reported> =>
    waitFor(async () => {
      const r = (await readReported(broker.url, deviceId)) as Reported | null;
      return r && check(r) ? r : null;
    }, 15_000, what);
  const post = async (path: string): Promise<number> => (await fetch(`${rt.baseUrl}/v2/repository${path}`, { method: 'POST' })).status;
  const served = async (): Promise<string | number> => {
    const r = await fetch(`${rt.baseUrl}/v2/models/cls`);
    return r.status === 200 ? ((await r.json()) as { versions: string[] }).versions.join(',') : r.status;
  };
  try {
    await reported((r) => r.models.cls?.status === 'active' && r.models.cls.version === 1, 'cls v1 active');

    // A local unload: gone from state/reported at once (not at the next backlog check).
    assert.equal(await post('/models/cls/unload'), 200);
    await reported((r) => r.models.cls === undefined, 'cls gone after the local unload');

    // A version dropped into the folder and loaded over HTTP: reported active.
    repo.addVersion('cls', 2, MODEL_FILES.ocrCls);
    assert.equal(await post('/models/cls/load'), 200);
    const v2 = await reported((r) => r.models.cls?.version === 2 && r.models.cls.status === 'active', 'cls v2 active');
    assert.equal(v2.models.cls?.sha256, sha256(bytes));

    // The cloud asks for version 1: below what the device serves, refused before any download.
    await publishDesired(broker.url, deviceId, { version: 1, models: { cls: specFor('cls', 1, bytes, keys) } });
    const refused = await reported((r) => r.models.cls?.status === 'failed', 'the downgrade refused');
    assert.equal(refused.models.cls?.error?.code, 'PERCH_ERR_MODEL_DOWNGRADE');
    assert.equal(refused.models.cls?.active?.version, 2, 'version 2 goes on serving');
    assert.equal(await served(), '2');

    // A newer cloud version installs into the same folder and serves.
    const responder = await chunkResponder(broker.url, deviceId, 'cls', 3, bytes, 64 * 1024);
    try {
      await publishDesired(broker.url, deviceId, { version: 2, models: { cls: specFor('cls', 3, bytes, keys) } });
      await reported((r) => r.desiredVersion === 2 && r.models.cls?.version === 3 && r.models.cls.status === 'active', 'cls v3 from the cloud active');
    } finally {
      await responder.close();
    }
    assert.ok(existsSync(join(repo.dir, 'cls', '3', 'model.onnx')), 'the cloud wrote into the repository folder');
    assert.equal(await served(), '3');

    // Unloaded locally, then a restart: the folder wins, the unload is forgotten.
    assert.equal(await post('/models/cls/unload'), 200);
    await reported((r) => r.models.cls?.status !== 'active', 'cls not active after the local unload');
    await rt.stop();
    rt = await startRuntime(repo.dir, config);
    assert.equal(await served(), '3');
    const after = await reported((r) => r.models.cls?.status === 'active', 'cls active again after the restart');
    assert.equal(after.models.cls?.version, 3);
    assert.equal(after.desiredVersion, 2, 'the applied cloud document is remembered, not applied again');
  } finally {
    await rt.stop();
    await publishDesired(broker.url, deviceId, null);
    repo.remove();
    rmSync(dataDir, { recursive: true, force: true });
  }
});
