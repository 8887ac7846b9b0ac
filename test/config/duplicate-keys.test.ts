// A key given twice in a config file or a model.json: JSON.parse keeps the last silently, so an
// operator who wrote "maxBatchSize" twice got the second without a word. Refused at load with
// the file's PERCH_ERR_* code, naming the key's path (runtime/base/duplicate-keys.ts); the same
// key in different objects, and text that only looks like a key, are not duplicates.
// (Desired documents over MQTT: test/cloud-sync/desired-refused.test.ts.)
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { buildSpec } from '../../cloud-sync/fleet/store/model-spec.js';
import { duplicateKeyPath } from '../../runtime/base/duplicate-keys.js';
import { PerchError } from '../../runtime/base/errors.js';
import { loadConfig } from '../../runtime/config/load.js';
import { readModelConfig } from '../../runtime/models/repository.js';
import { MODEL_FILES } from '../helpers/paths.js';
import { CLI, cleanEnv } from '../helpers/perch-process.js';

const dir = mkdtempSync(join(tmpdir(), 'perch-dup-keys-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function file(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

function refused(code: string, path: string): (err: unknown) => boolean {
  return (err) => {
    assert.ok(err instanceof PerchError, String(err));
    assert.equal(err.code, code);
    assert.ok(err.message.includes(`${path}: key given twice`), err.message);
    return true;
  };
}

test('the config file: PERCH_ERR_CONFIG_INVALID naming the key path; perch serve stops with it', () => {
  const twice = file('twice.json', '{"server": {"port": 8080, "maxRequestBytes": 1024, "port": 9090}}');
  assert.throws(() => loadConfig({ configPath: twice, env: {} }), refused('PERCH_ERR_CONFIG_INVALID', 'server.port'));
  const nested = file('nested.json', '{"models": {"overrides": {"vad": {"batching": {"maxQueueDelayMs": 4}}, "ocr": {"batching": {"maxQueueDelayMs": 2, "maxQueueDelayMs": 8}}}}}');
  assert.throws(() => loadConfig({ configPath: nested, env: {} }), refused('PERCH_ERR_CONFIG_INVALID', 'models.overrides.ocr.batching.maxQueueDelayMs'));
  // The same names in different objects are not duplicates.
  const fine = file('fine.json', '{"server": {"port": 0}, "models": {"overrides": {"a": {"batching": {"maxQueueDelayMs": 4}}, "b": {"batching": {"maxQueueDelayMs": 4}}}}}');
  assert.equal(loadConfig({ configPath: fine, env: {} }).server.port, 0);

  const r = spawnSync(process.execPath, [CLI, 'serve', '--config', twice], { env: cleanEnv(), encoding: 'utf8', timeout: 60_000 });
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stderr, /PERCH_ERR_CONFIG_INVALID: .*\n\s+- server\.port: key given twice/);
});

test("model.json: PERCH_ERR_MODEL_CONFIG_INVALID naming the key path (the model fails, as any bad model.json)", () => {
  mkdirSync(join(dir, 'repo', 'm'), { recursive: true });
  writeFileSync(join(dir, 'repo', 'm', 'model.json'), '{"maxBatchSize": 8, "batching": {"maxQueueDelayMs": 2}, "maxBatchSize": 64}');
  assert.throws(() => readModelConfig(join(dir, 'repo'), 'm'), refused('PERCH_ERR_MODEL_CONFIG_INVALID', 'maxBatchSize'));
  writeFileSync(join(dir, 'repo', 'm', 'model.json'), '{"inputs": [{"name": "x", "datatype": "FP32", "dims": [1]}, {"name": "y", "datatype": "FP32", "dims": [1], "dims": [2]}]}');
  assert.throws(() => readModelConfig(join(dir, 'repo'), 'm'), refused('PERCH_ERR_MODEL_CONFIG_INVALID', 'inputs.1.dims'));
});

test('perch fleet model files: a model.json with a key twice is refused before anything is signed or stored', async () => {
  const config = file('model.json', '{"maxBatchSize": 8, "maxBatchSize": 64}');
  await assert.rejects(buildSpec({ name: 'm', version: 1, file: MODEL_FILES.sileroVad, configFile: config }), refused('PERCH_ERR_MODEL_CONFIG_INVALID', 'maxBatchSize'));
});

test('the scan: escapes, strings that look like keys, arrays, nesting', () => {
  assert.equal(duplicateKeyPath('{"a": 1, "b": {"a": 2}, "c": [{"a": 1}, {"a": 2}]}'), null);
  assert.deepEqual(duplicateKeyPath('{"ab": 1, "a\\u0062": 2}'), ['ab'], 'an escaped spelling is the same key');
  assert.equal(duplicateKeyPath('{"a": "\\"a\\": {\\"x\\": 1, \\"x\\": 2}", "b": "}{[,"}'), null, 'keys inside a string value are not keys');
  assert.equal(duplicateKeyPath('{"a": {}, "b": [], "c": [[], {}, "a"], "d": "a"}'), null);
  assert.deepEqual(duplicateKeyPath('[1, {"x": [0, 1, {"k": 1, "k": 2}]}]'), ['1', 'x', '2', 'k']);
  assert.deepEqual(duplicateKeyPath('{"a\\\\": 1, "a\\\\": 2}'), ['a\\']);
  // Deep nesting is a loop, not a recursion.
  const deep = `${'{"a":'.repeat(100_000)}{"k":1,"k":2}${'}'.repeat(100_000)}`;
  assert.equal(duplicateKeyPath(deep)?.length, 100_001);
});
