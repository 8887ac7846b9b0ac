// models.overrides that contradict a model's model.json (runtime/models/overrides.ts): a
// priorityLevels below its defaultPriority (or a defaultPriority above its priorityLevels) was
// taken, live and at load, and then every request that gave no priority was refused 400
// PERCH_ERR_INVALID_PARAMETER: the model as good as down, and a live document persisted across
// reboots. Live: refused whole, nothing changes. At load (config file, or a document saved before
// a model.json changed): that model is not ready with the reason, the others serve.
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { httpInfer } from '../helpers/clients.js';
import { clsInput } from '../helpers/models.js';
import { MODEL_FILES } from '../helpers/paths.js';
import { TempRepository } from '../helpers/repository.js';
import { startRuntime, type TestRuntime } from '../helpers/runtime.js';
import { rawRequest } from '../helpers/wire.js';

let rt: TestRuntime | undefined;
let repo: TempRepository | undefined;
after(async () => {
  await rt?.stop();
  repo?.remove();
});

test('overrides that contradict model.json: refused live (nothing changes), and at load only that model fails', async () => {
  repo = new TempRepository({ cls: { versions: { 1: MODEL_FILES.ocrCls } }, other: { versions: { 1: MODEL_FILES.ocrCls } } });
  rt = await startRuntime(repo.dir, { models: { overrides: { other: { batching: { priorityLevels: 2 } } } } });

  // At load: 'other' (defaultPriority 5 > priorityLevels 2) is not ready, with its reason and code.
  const ready = await rawRequest(rt.baseUrl, 'GET', '/v2/models/other/ready');
  assert.equal(ready.status, 503, ready.text);
  const index = await rawRequest(rt.baseUrl, 'POST', '/v2/repository/index');
  const other = (index.json as unknown as Array<Record<string, unknown>>).find((m) => m.name === 'other');
  assert.equal(other?.code, 'PERCH_ERR_MODEL_CONFIG_INVALID', JSON.stringify(other));
  assert.match(String(other?.reason), /batching\.defaultPriority 5 exceeds batching\.priorityLevels 2/);
  assert.equal((await httpInfer(rt.baseUrl, 'cls', clsInput(1))).status, 200, 'the others serve');

  // Live: refused whole, with the model named; nothing of it applied.
  for (const batching of [{ defaultPriority: 50 }, { priorityLevels: 2 }]) {
    const r = rt.runtime.applyLiveConfig({ log: { level: 'warn' }, models: { overrides: { cls: { batching } } } });
    assert.ok(!r.ok, JSON.stringify(batching));
    assert.equal(r.error.code, 'PERCH_ERR_LIVE_CONFIG_INVALID');
    assert.match(r.error.message, /models\.overrides\.cls \(version 1\): .*exceeds batching\.priorityLevels/);
    assert.equal(rt.runtime.liveConfig.log.level, 'silent', 'nothing of a refused document is applied');
    assert.equal(rt.runtime.registry.resolve('cls').config.batching.priorityLevels, 10);
    const res = await httpInfer(rt.baseUrl, 'cls', clsInput(2));
    assert.equal(res.status, 200, JSON.stringify(res.body));
  }
  // Both keys together are one consistent setting: taken.
  assert.ok(rt.runtime.applyLiveConfig({ models: { overrides: { cls: { batching: { priorityLevels: 2, defaultPriority: 1 } } } } }).ok);
  assert.equal((await httpInfer(rt.baseUrl, 'cls', clsInput(3))).status, 200);
});
