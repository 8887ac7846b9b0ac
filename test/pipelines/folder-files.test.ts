// The files a pipeline step reads (classify.topk `labels`, ctc.greedy `keys`) are files of the
// model's own folder (runtime/models/folder-file.ts). `"labels": "../../../../etc/passwd"` was
// joined as written and /etc/passwd came back to API clients line by line as class labels; a
// labels.txt that is a symlink out of the folder did the same. Both are now refused at load
// (the model not ready, PERCH_ERR_MODEL_CONFIG_INVALID), the others serve.
import assert from 'node:assert/strict';
import { symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { httpInfer } from '../helpers/clients.js';
import { clsInput } from '../helpers/models.js';
import { MODEL_FILES } from '../helpers/paths.js';
import { TempRepository } from '../helpers/repository.js';
import { startRuntime, type TestRuntime } from '../helpers/runtime.js';
import { rawRequest } from '../helpers/wire.js';

const OUTSIDE = '/etc/passwd';

function topk(labels: string): unknown {
  return {
    maxBatchSize: 0,
    inputs: [{ name: 'x', datatype: 'FP32', dims: [1, 3, 48, 192] }],
    outputs: [{ name: 'labels', datatype: 'BYTES', dims: [-1, 2] }, { name: 'scores', datatype: 'FP32', dims: [-1, 2] }],
    pipeline: {
      steps: [
        { name: 'run', op: 'model', model: 'cls', inputs: { x: 'x' }, outputs: { 'softmax_0.tmp_0': 'probs' } },
        { name: 'top', op: 'classify.topk', from: 'probs', to: 'labels', scores: 'scores', labels, k: 2 },
      ],
    },
  };
}

let repo: TempRepository;
let rt: TestRuntime;
before(async () => {
  repo = new TempRepository({
    cls: { versions: { 1: MODEL_FILES.ocrCls } },
    good: { versions: {}, config: topk('labels.txt') },
    'by-path': { versions: {}, config: topk(`../../../../../../..${OUTSIDE}`) },
    'by-link': { versions: {}, config: topk('labels.txt') },
  });
  writeFileSync(join(repo.dir, 'good', 'labels.txt'), 'upright\nupside-down\n');
  symlinkSync(OUTSIDE, join(repo.dir, 'by-link', 'labels.txt'));
  rt = await startRuntime(repo.dir);
});
after(async () => {
  await rt?.stop();
  repo?.remove();
});

test('a labels file in the model folder serves', async () => {
  const res = await httpInfer(rt.baseUrl, 'good', clsInput(1));
  assert.equal(res.status, 200, JSON.stringify(res.body));
  assert.deepEqual([...(res.outputs[0]?.data as unknown as Buffer[])].map(String).sort(), ['upright', 'upside-down']);
});

for (const [name, reason] of [['by-path', /a file name in the model folder, not a path/], ['by-link', /not a file of the model folder/]] as const) {
  test(`${name}: not ready with PERCH_ERR_MODEL_CONFIG_INVALID, nothing of ${OUTSIDE} served`, async () => {
    const index = await rawRequest(rt.baseUrl, 'POST', '/v2/repository/index');
    const entry = (index.json as unknown as Array<Record<string, unknown>>).find((m) => m.name === name);
    assert.equal(entry?.code, 'PERCH_ERR_MODEL_CONFIG_INVALID', JSON.stringify(entry));
    assert.match(String(entry?.reason), reason);
    const res = await httpInfer(rt.baseUrl, name, clsInput(2));
    assert.equal(res.status, 503, JSON.stringify(res.body));
    assert.doesNotMatch(JSON.stringify(res.body), /root:/);
  });
}
