// The persistent result cache through the API: hit, bypass, restart, new version.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { httpInfer } from '../helpers/clients.js';
import { clsInput } from '../helpers/models.js';
import { MODEL_FILES } from '../helpers/paths.js';
import { TempRepository } from '../helpers/repository.js';
import { startRuntime, type TestRuntime } from '../helpers/runtime.js';

async function execs(rt: TestRuntime): Promise<number> {
  const text = await (await fetch(`${rt.baseUrl}/metrics`)).text();
  return text.split('\n').filter((l) => l.startsWith('perch_inference_exec_count_total{')).reduce((n, l) => n + Number(l.split(' ').pop()), 0);
}

test('result cache: hit without running, bypass per request, survives restart, never crosses versions', async () => {
  const repo = new TempRepository({ cls: { versions: { 1: MODEL_FILES.ocrCls }, config: { cache: { enabled: true, ttlSeconds: 600 } } } });
  const dataDir = mkdtempSync(join(tmpdir(), 'perch-data-'));
  const input = clsInput(3);
  let rt = await startRuntime(repo.dir, { dataDir });
  try {
    const first = await httpInfer(rt.baseUrl, 'cls', input);
    assert.equal(first.status, 200);
    assert.equal((first.body.parameters as { cached: boolean }).cached, false);
    const ran = await execs(rt);
    const second = await httpInfer(rt.baseUrl, 'cls', input, { binary: true });
    assert.equal((second.body.parameters as { cached: boolean }).cached, true);
    assert.deepEqual(Array.from(second.outputs[0]!.data as Float32Array), Array.from(first.outputs[0]!.data as Float32Array, Math.fround));
    assert.equal(await execs(rt), ran, 'a hit does not run the model');

    const bypass = await httpInfer(rt.baseUrl, 'cls', input, { parameters: { cache: false } });
    assert.equal((bypass.body.parameters as { cached: boolean }).cached, false);
    assert.equal(await execs(rt), ran + 1);
    const other = await httpInfer(rt.baseUrl, 'cls', clsInput(4));
    assert.equal((other.body.parameters as { cached: boolean }).cached, false, 'different input, different key');

    await rt.stop();
    rt = await startRuntime(repo.dir, { dataDir });
    const afterRestart = await httpInfer(rt.baseUrl, 'cls', input);
    assert.equal((afterRestart.body.parameters as { cached: boolean }).cached, true, 'the cache survives a restart');

    repo.addVersion('cls', 2, MODEL_FILES.ocrCls);
    assert.equal((await fetch(`${rt.baseUrl}/v2/repository/models/cls/load`, { method: 'POST' })).status, 200);
    const v2 = await httpInfer(rt.baseUrl, 'cls', input);
    assert.equal(v2.body.model_version, '2');
    assert.equal((v2.body.parameters as { cached: boolean }).cached, false, 'a new version never answers from the old one');
    const bad = await httpInfer(rt.baseUrl, 'cls', input, { parameters: { cache: 'yes' } });
    assert.equal(bad.status, 400);
    assert.equal(bad.body.code, 'PERCH_ERR_INVALID_PARAMETER');
  } finally {
    await rt.stop();
    repo.remove();
    rmSync(dataDir, { recursive: true, force: true });
  }
});
