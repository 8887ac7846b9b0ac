// `perch fleet push` and `config` against a real Mosquitto: a retained desired document whose
// version rises and which keeps the other models and config; the fleet store layout; unknown
// devices; a broker that cannot be reached.
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { MqttClient } from 'mqtt';
import { modelSpecSchema, type DesiredState } from '../../cloud-sync/protocol/schemas.js';
import { topics } from '../../cloud-sync/protocol/topics.js';
import { parseTrustedKeys, verifySignature } from '../../cloud-sync/protocol/signing.js';
import { freePort } from '../helpers/free-port.js';
import { startMosquitto, type Mosquitto } from '../helpers/mosquitto.js';
import { announceDevice, fleet, mqttClient, PREFIX, retainedDesired as retainedDesiredOf, spawnFleet, TempDirs } from './harness.js';

describe('push and config publish the desired state', () => {
  const temp = new TempDirs();
  let broker: Mosquitto;
  let device: MqttClient;
  let store: string;
  let keys: string;
  const common = (): string[] => ['--url', broker.url, '--store', store, '--timeout', '3000'];

  before(async () => {
    broker = await startMosquitto();
    device = await mqttClient(broker.url, { clientId: 'pi-1' });
    await announceDevice(device, 'pi-1');
    store = temp.make();
    keys = join(temp.make(), 'keys');
    assert.equal((await fleet(['keygen', '--out', keys])).code, 0);
  });
  after(async () => {
    await device?.endAsync();
    await broker?.close();
    temp.cleanup();
  });

  const retainedDesired = (deviceId: string): Promise<DesiredState> => retainedDesiredOf(broker.url, deviceId);

  test('push stores the model, signs it, and each publish raises the version and keeps the other models', async () => {
    const dir = temp.make();
    const a = join(dir, 'a.onnx');
    const b = join(dir, 'b.onnx');
    writeFileSync(a, 'model a bytes');
    writeFileSync(b, Buffer.alloc(300_000, 7));
    writeFileSync(join(dir, 'model.json'), '{"maxBatchSize":4}');

    const r1 = await fleet(['push', ...common(), '--device', 'pi-1', '--model', 'vad', '--version', '1', '--file', a, '--sign-key', join(keys, 'signing-key.pem')]);
    assert.equal(r1.code, 0, r1.stderr);
    const d1 = await retainedDesired('pi-1');
    assert.equal(d1.version, 1);
    const vad = d1.models.vad;
    assert.ok(vad);
    assert.deepEqual(verifySignature(vad, 'vad', parseTrustedKeys(readFileSync(join(keys, 'signing-key.pub.pem'), 'utf8'))), { ok: true, keyIndex: 0, manifest: 2 });
    assert.deepEqual(readFileSync(join(store, 'models', 'vad', '1', 'model.onnx')), readFileSync(a));
    assert.deepEqual(modelSpecSchema.parse(JSON.parse(readFileSync(join(store, 'models', 'vad', '1', 'spec.json'), 'utf8'))), vad);

    // Unsigned, with a chunk size and a model.json: another model in the same document.
    const r2 = await fleet(['push', ...common(), '--device', 'pi-1', '--model', 'ocr', '--version', '3', '--file', b, '--chunk-size', '4096', '--config', join(dir, 'model.json')]);
    assert.equal(r2.code, 0, r2.stderr);
    const d2 = await retainedDesired('pi-1');
    assert.equal(d2.version, 2);
    assert.deepEqual(d2.models.vad, vad, 'the other model is kept');
    assert.equal(d2.models.ocr?.signature, undefined);
    assert.equal(d2.models.ocr?.chunkSize, 4096);
    assert.deepEqual(d2.models.ocr?.config, { maxBatchSize: 4 });
    assert.ok(existsSync(join(store, 'models', 'ocr', '3', 'model.json')));

    const r3 = await fleet(['config', ...common(), '--device', 'pi-1', '--set', 'log.level=debug', '--set', 'cloud.upload.batchSize=50',
      '--set', 'models.overrides.silero-vad.batching.maxQueueDelayMs=2']);
    assert.equal(r3.code, 0, r3.stderr);
    const r4 = await fleet(['config', ...common(), '--device', 'pi-1', '--set', 'cloud.upload.maxEventsPerSecond=100']);
    assert.equal(r4.code, 0, r4.stderr);
    const d4 = await retainedDesired('pi-1');
    assert.equal(d4.version, 4);
    assert.deepEqual(Object.keys(d4.models).sort(), ['ocr', 'vad']);
    assert.deepEqual(d4.config, {
      log: { level: 'debug' },
      cloud: { upload: { batchSize: 50, maxEventsPerSecond: 100 } },
      models: { overrides: { 'silero-vad': { batching: { maxQueueDelayMs: 2 } } } },
    });
    assert.deepEqual(JSON.parse(r4.stdout), d4, 'push and config print the document they published');

    // A new version of a model replaces only that model's spec.
    const r5 = await fleet(['push', ...common(), '--device', 'pi-1', '--model', 'vad', '--version', '2', '--file', b]);
    assert.equal(r5.code, 0, r5.stderr);
    const d5 = await retainedDesired('pi-1');
    assert.equal(d5.version, 5);
    assert.equal(d5.models.vad?.version, 2);
    assert.equal(d5.models.ocr?.version, 3);
    assert.equal((d5.config.log as { level: string }).level, 'debug');
  });

  test('config refuses keys the device would refuse, before publishing; --unset repairs a poisoned document', async () => {
    await announceDevice(device, 'pi-2');
    // A desired document written before the fleet tool checked: a restart-only key in its config.
    const t = topics(PREFIX, 'pi-2');
    await device.publishAsync(t.desired, JSON.stringify({ version: 7, models: {}, config: { server: { port: 9000 }, log: { level: 'debug' } } }), { qos: 1, retain: true });
    assert.equal((await retainedDesired('pi-2')).version, 7);

    const refused: Array<[string, string]> = [['server.port=9000', '- server: unknown key'], ['cloud.upload.batchSize=0', '- cloud.upload.batchSize:'], ['log.level=loud', '- log.level:']];
    for (const [set, line] of refused) {
      const r = await fleet(['config', ...common(), '--device', 'pi-1', '--set', set]);
      assert.equal(r.code, 1, `${set}: ${r.stderr}`);
      assert.match(r.stderr, /PERCH_ERR_LIVE_CONFIG_INVALID: not published/);
      assert.ok(r.stderr.includes(line), `names the bad key: ${r.stderr}`);
    }
    // Even a good key is refused while the document holds a bad one: the document is checked whole.
    const good = await fleet(['config', ...common(), '--device', 'pi-2', '--set', 'log.level=warn']);
    assert.equal(good.code, 1);
    assert.match(good.stderr, /server[^\n]*\n[\s\S]*--unset/);
    const nulled = await fleet(['config', ...common(), '--device', 'pi-2', '--set', 'server=null']);
    assert.equal(nulled.code, 1, 'null is a value, not a removal');
    // A JSON value with a key given twice: refused as config files and desired documents are
    // (JSON.parse kept the last, and the document published carried only that one).
    const twice = await fleet(['config', ...common(), '--device', 'pi-2', '--unset', 'server', '--set', 'models.overrides.vad={"cache":{"enabled":true,"enabled":false}}']);
    assert.equal(twice.code, 1, twice.stderr);
    assert.match(twice.stderr, /^perch fleet: PERCH_ERR_LIVE_CONFIG_INVALID: not published: --set models\.overrides\.vad\.cache\.enabled: key given twice/m);
    assert.equal((await retainedDesired('pi-2')).version, 7, 'nothing was published');

    const typo = await fleet(['config', ...common(), '--device', 'pi-2', '--unset', 'servr']);
    assert.equal(typo.code, 2);
    assert.match(typo.stderr, /'servr' is not set/);
    const repaired = await fleet(['config', ...common(), '--device', 'pi-2', '--unset', 'server', '--set', 'models.overrides.vad.cache.enabled=true']);
    assert.equal(repaired.code, 0, repaired.stderr);
    const d = await retainedDesired('pi-2');
    assert.equal(d.version, 8);
    assert.deepEqual(d.config, { log: { level: 'debug' }, models: { overrides: { vad: { cache: { enabled: true } } } } });
    // Unsetting the last key under an object takes the emptied objects out too.
    const unset = await fleet(['config', ...common(), '--device', 'pi-2', '--unset', 'models.overrides.vad.cache.enabled']);
    assert.equal(unset.code, 0, unset.stderr);
    assert.deepEqual((await retainedDesired('pi-2')).config, { log: { level: 'debug' } });
  });

  test('devices shows a download in progress and a desired document the device ignored', async () => {
    const c = await mqttClient(broker.url, { clientId: 'pi-progress' });
    await announceDevice(c, 'pi-progress', {
      desiredVersion: 4,
      models: { vad: { version: 2, sha256: 'ab'.repeat(32), status: 'downloading', progress: { staged: 12, total: 36 } } },
      ignored: { version: 3, reason: 'desired version 3 is not above version 4, the one applied' },
    });
    await c.endAsync();
    const r = await fleet(['devices', ...common()]);
    assert.equal(r.code, 0, r.stderr);
    const row = r.stdout.split('\n').find((l) => l.startsWith('pi-progress')) ?? '';
    assert.match(row, /4 \(ignored v3\)/);
    assert.match(row, /vad v2 downloading 12\/36/);
  });

  test('an unknown device is refused with PERCH_ERR_DEVICE_UNKNOWN, unless --force', async () => {
    const file = join(temp.make(), 'm.onnx');
    writeFileSync(file, 'x');
    const fresh = temp.make();
    const r = await fleet(['push', '--url', broker.url, '--store', fresh, '--timeout', '3000', '--device', 'pi-typo', '--model', 'vad', '--version', '1', '--file', file]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /PERCH_ERR_DEVICE_UNKNOWN/);
    assert.equal(existsSync(join(fresh, 'models')), false, 'a refused push writes nothing to the fleet store');
    const c = await fleet(['config', ...common(), '--device', 'pi-typo', '--set', 'log.level=info']);
    assert.equal(c.code, 1);
    assert.match(c.stderr, /PERCH_ERR_DEVICE_UNKNOWN/);
    const forced = await fleet(['config', ...common(), '--device', 'pi-new', '--set', 'log.level=info', '--force']);
    assert.equal(forced.code, 0, forced.stderr);
    assert.equal((await retainedDesired('pi-new')).version, 1);
  });
});

describe('a broker that cannot be reached', () => {
  let silent: Server;
  let silentPort: number;
  const sockets = new Set<Socket>();
  before(async () => {
    // Accepts TCP and never answers: the case a plain connect timeout would hang on.
    silent = createServer((s) => sockets.add(s));
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    silentPort = (silent.address() as { port: number }).port;
  });
  after(() => {
    for (const s of sockets) s.destroy();
    silent.close();
  });

  test('connection refused: PERCH_ERR_BROKER_UNREACHABLE, exit 1, at once (a real process)', async () => {
    const port = await freePort();
    const started = Date.now();
    // "At once" = without waiting for the --timeout deadline: a deadline far beyond what a slow
    // start of the process can take on a busy machine (a 5 s bound failed at load 18).
    const child = spawnFleet(['devices', '--url', `mqtt://127.0.0.1:${port}`, '--timeout', '600000']);
    const { code } = await child.exited;
    assert.equal(code, 1);
    assert.match(child.stderr, /PERCH_ERR_BROKER_UNREACHABLE/);
    assert.ok(Date.now() - started < 300_000, `took ${Date.now() - started} ms: it waited for the deadline`);
  });

  test('a broker that never answers: PERCH_ERR_BROKER_UNREACHABLE at the --timeout deadline', async () => {
    const started = Date.now();
    const r = await fleet(['config', '--url', `mqtt://127.0.0.1:${silentPort}`, '--timeout', '400', '--device', 'pi-1', '--set', 'a=1']);
    const took = Date.now() - started;
    assert.equal(r.code, 1);
    assert.match(r.stderr, /PERCH_ERR_BROKER_UNREACHABLE/);
    assert.ok(took >= 350 && took < 3000, `took ${took} ms`);
  });
});
