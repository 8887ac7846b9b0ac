// The `perch fleet` command's own inputs, hostile or broken, through the real `perch` process:
// each is a coded error (exit 1, `perch fleet: PERCH_ERR_...`), never PERCH_ERR_INTERNAL or a
// stack trace. Before: a model.json nested 50,000 levels deep ('Maximum call stack size
// exceeded', PERCH_ERR_INTERNAL), --cert/--key files that are not PEM (PERCH_ERR_INTERNAL, then
// MQTT.js crashed the process with a TypeError on its half-built client), and a fleet.db that is
// not a database ('file is not a database', PERCH_ERR_INTERNAL). docs/fleet.md.
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { startMosquitto, type Mosquitto } from '../helpers/mosquitto.js';
import { spawnFleet, TempDirs } from './harness.js';

const temp = new TempDirs();
let broker: Mosquitto;
before(async () => {
  broker = await startMosquitto();
});
after(async () => {
  await broker.close();
  temp.cleanup();
});

async function fails(args: string[], code: string): Promise<string> {
  const c = spawnFleet(args);
  const { code: exit } = await c.exited;
  assert.equal(exit, 1, `${args.join(' ')}: ${c.stderr}`);
  assert.match(c.stderr, new RegExp(`^perch fleet: ${code}: `), c.stderr);
  assert.doesNotMatch(c.stderr, /PERCH_ERR_INTERNAL|\n\s+at |TypeError/, c.stderr);
  return c.stderr;
}

test('a model.json nested too deep, TLS files that are not PEM and a fleet.db that is no database are coded errors', async () => {
  const dir = temp.make();
  const model = join(dir, 'm.onnx');
  writeFileSync(model, 'model bytes');
  const deep = join(dir, 'deep.json');
  writeFileSync(deep, `{"a":${'['.repeat(50_000)}${']'.repeat(50_000)}}`);
  const at = join(dir, 'at-bound.json');
  // 125 levels: in a desired document (3 levels down) that is 128, what devices take.
  writeFileSync(at, `${'{"a":'.repeat(124)}{}${'}'.repeat(124)}`);
  const keygen = spawnFleet(['keygen', '--out', join(dir, 'keys')]);
  assert.equal((await keygen.exited).code, 0, keygen.stderr);
  const sign = ['sign', '--sign-key', join(dir, 'keys', 'signing-key.pem'), '--name', 'vad', '--version', '1', '--file', model];
  const s = await fails([...sign, '--config', deep], 'PERCH_ERR_MODEL_CONFIG_INVALID');
  assert.match(s, /more than 125 levels deep/);
  const ok = spawnFleet([...sign, '--config', at]);
  assert.equal((await ok.exited).code, 0, ok.stderr);
  await fails(['push', '--url', broker.url, '--store', dir, '--device', 'pi-1', '--force', '--model', 'vad', '--version', '1', '--file', model, '--config', deep], 'PERCH_ERR_MODEL_CONFIG_INVALID');

  const notPem = join(dir, 'not.pem');
  writeFileSync(notPem, 'not a certificate');
  await fails(['devices', '--url', broker.url, '--store', dir, '--cert', notPem, '--key', notPem], 'PERCH_ERR_BROKER_UNREACHABLE');
  await fails(['devices', '--url', broker.url.replace('mqtt:', 'mqtts:'), '--store', dir, '--ca', notPem], 'PERCH_ERR_BROKER_UNREACHABLE');

  const broken = join(dir, 'broken');
  mkdirSync(broken);
  writeFileSync(join(broken, 'fleet.db'), 'not a database '.repeat(1000));
  await fails(['events', '--store', broken, '--device', 'pi-1'], 'PERCH_ERR_STORE_UNAVAILABLE');
  await fails(['devices', '--url', broker.url, '--store', broken], 'PERCH_ERR_STORE_UNAVAILABLE');
});
