// `perch fleet remove` against a real Mosquitto: the next retained desired document names the
// model as null (docs/protocol.md section 5: null removes it), keeps the rest, raises the version; a model
// the device neither is told to run nor reports is refused unless --force. The device side of a
// removal is tested end to end in test/cloud-sync/e2e-remove.test.ts.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { MqttClient } from 'mqtt';
import type { DesiredState } from '../../cloud-sync/protocol/schemas.js';
import { startMosquitto, type Mosquitto } from '../helpers/mosquitto.js';
import { announceDevice, fleet, mqttClient, retainedDesired as retainedDesiredOf, TempDirs } from './harness.js';

const temp = new TempDirs();
let broker: Mosquitto;
let device: MqttClient;
let store: string;
const common = (): string[] => ['--url', broker.url, '--store', store, '--timeout', '3000'];

before(async () => {
  broker = await startMosquitto();
  device = await mqttClient(broker.url, { clientId: 'pi-rm' });
  // It reports a model the fleet never pushed (shipped in its own repository).
  await announceDevice(device, 'pi-rm', { models: { shipped: { version: 1, sha256: 'a'.repeat(64), status: 'active' } } });
  store = temp.make();
});
after(async () => {
  await device?.endAsync();
  await broker?.close();
  temp.cleanup();
});

const retainedDesired = (deviceId: string): Promise<DesiredState> => retainedDesiredOf(broker.url, deviceId);

test('remove publishes the model as null, keeps the other models and the config, and raises the version', async () => {
  const file = join(temp.make(), 'm.onnx');
  writeFileSync(file, 'model bytes');
  for (const model of ['vad', 'ocr']) {
    const r = await fleet(['push', ...common(), '--device', 'pi-rm', '--model', model, '--version', '1', '--file', file]);
    assert.equal(r.code, 0, r.stderr);
  }
  assert.equal((await fleet(['config', ...common(), '--device', 'pi-rm', '--set', 'log.level=debug'])).code, 0);

  const r = await fleet(['remove', ...common(), '--device', 'pi-rm', '--model', 'vad']);
  assert.equal(r.code, 0, r.stderr);
  const d = await retainedDesired('pi-rm');
  assert.equal(d.version, 4);
  assert.equal(d.models.vad, null);
  assert.equal(d.models.ocr?.version, 1);
  assert.deepEqual(d.config, { log: { level: 'debug' } });
  assert.deepEqual(JSON.parse(r.stdout), d, 'remove prints the document it published');

  // A model only the reported state lists (never pushed) can be removed too.
  const s = await fleet(['remove', ...common(), '--device', 'pi-rm', '--model', 'shipped']);
  assert.equal(s.code, 0, s.stderr);
  const d2 = await retainedDesired('pi-rm');
  assert.equal(d2.version, 5);
  assert.deepEqual(d2.models, { vad: null, ocr: d.models.ocr, shipped: null });

  // A later push of the model replaces its null with the spec.
  assert.equal((await fleet(['push', ...common(), '--device', 'pi-rm', '--model', 'vad', '--version', '2', '--file', file])).code, 0);
  assert.equal((await retainedDesired('pi-rm')).models.vad?.version, 2);
});

test('a model the device is not told to run and does not report is PERCH_ERR_MODEL_NOT_FOUND, unless --force', async () => {
  const before = (await retainedDesired('pi-rm')).version;
  const typo = await fleet(['remove', ...common(), '--device', 'pi-rm', '--model', 'vda']);
  assert.equal(typo.code, 1);
  assert.match(typo.stderr, /PERCH_ERR_MODEL_NOT_FOUND/);
  // Already removed (null in desired, and the device no longer reports it): nothing to remove.
  await announceDevice(device, 'pi-rm', { models: {} });
  const again = await fleet(['remove', ...common(), '--device', 'pi-rm', '--model', 'shipped']);
  assert.equal(again.code, 1);
  assert.match(again.stderr, /PERCH_ERR_MODEL_NOT_FOUND/);
  assert.equal((await retainedDesired('pi-rm')).version, before, 'nothing published');

  const forced = await fleet(['remove', ...common(), '--device', 'pi-rm', '--model', 'vda', '--force']);
  assert.equal(forced.code, 0, forced.stderr);
  assert.equal((await retainedDesired('pi-rm')).models.vda, null);
});

test('an unknown device is refused, bad arguments are usage errors', async () => {
  const r = await fleet(['remove', ...common(), '--device', 'pi-typo', '--model', 'vad']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /PERCH_ERR_DEVICE_UNKNOWN/);
  const noModel = await fleet(['remove', ...common(), '--device', 'pi-rm']);
  assert.equal(noModel.code, 2);
  assert.match(noModel.stderr, /--model is required/);
  const badName = await fleet(['remove', ...common(), '--device', 'pi-rm', '--model', 'a/b']);
  assert.equal(badName.code, 2);
  const help = await fleet(['remove', '--help']);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /null removes the model/);
});
