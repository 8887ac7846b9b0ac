// Batching inferred from the ONNX file stacks requests only along axes it knows to be batch axes
// (issue 14, bug 3). Silero VAD v6 served without tensors in model.json: its state is
// [2, batch, 128], the batch axis in the middle, which the file cannot say. Batched along axis 0
// (as before), eight concurrent requests became one batch that onnxruntime's LSTM refused; now
// the model runs requests one by one and every request gets its own right answer.
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { httpInfer } from '../helpers/clients.js';
import { randomFp32, rawRun, releaseRawSessions } from '../helpers/models.js';
import { MODEL_FILES } from '../helpers/paths.js';
import { TempRepository } from '../helpers/repository.js';
import { startRuntime, type TestRuntime } from '../helpers/runtime.js';
import { metricValue, scrape } from '../helpers/wire.js';
import type { Tensor } from '../../runtime/tensor/tensor.js';

let rt: TestRuntime | undefined;
const repos: TempRepository[] = [];
after(async () => {
  await rt?.stop();
  for (const r of repos) r.remove();
  await releaseRawSessions();
});

function vadRequest(seed: number): Tensor[] {
  return [
    randomFp32('input', [1, 576], seed, -0.5, 0.5),
    // Every stream at its start: equal states, so nothing keeps the requests out of one batch.
    { name: 'state', datatype: 'FP32', shape: [2, 1, 128], data: new Float32Array(256) },
    { name: 'sr', datatype: 'INT64', shape: [], data: BigInt64Array.from([16000n]) },
  ];
}

test('silero-vad v6 without tensors in model.json: not batched; 8 concurrent requests all answered right', async () => {
  // Only a long queue delay in model.json: were the model batched, all eight would wait for one
  // batch together.
  const repo = new TempRepository({ vad: { versions: { 1: MODEL_FILES.sileroVad }, config: { batching: { maxQueueDelayMs: 10_000 } } } });
  repos.push(repo);
  rt = await startRuntime(repo.dir);
  const meta = (await (await fetch(`${rt.baseUrl}/v2/models/vad`)).json()) as { max_batch_size: number };
  assert.equal(meta.max_batch_size, 0, 'the file cannot prove where the batch axis of state is');

  const requests = Array.from({ length: 8 }, (_, i) => vadRequest(700 + i));
  const answers = await Promise.all(requests.map((inputs) => httpInfer(rt!.baseUrl, 'vad', inputs, { binary: true })));
  for (const [i, a] of answers.entries()) {
    assert.equal(a.status, 200, `request ${i}: ${JSON.stringify(a.body)}`);
    const want = await rawRun(MODEL_FILES.sileroVad, requests[i]!);
    for (const w of want) {
      const g = a.outputs.find((t) => t.name === w.name);
      assert.ok(g, `request ${i}: ${w.name}`);
      assert.deepEqual(g.shape, w.shape);
      const gd = g.data as Float32Array;
      const wd = w.data as Float32Array;
      for (let k = 0; k < wd.length; k++) assert.ok(Math.abs((gd[k] as number) - (wd[k] as number)) <= 1e-5, `request ${i}: ${w.name}[${k}]`);
    }
  }
  const text = await scrape(rt.baseUrl);
  assert.equal(metricValue(text, 'perch_inference_exec_count_total', { model: 'vad' }), 8, 'one session run per request');
});

test('maxBatchSize in model.json without the tensors: refused at load, naming the tensor whose batch axis is unknown', async () => {
  const repo = new TempRepository({ vad: { versions: { 1: MODEL_FILES.sileroVad }, config: { maxBatchSize: 16 } } });
  repos.push(repo);
  const local = await startRuntime(repo.dir);
  try {
    const res = await fetch(`${local.baseUrl}/v2/repository/index`, { method: 'POST' });
    const rows = (await res.json()) as Array<{ name: string; state: string; code?: string; reason: string }>;
    const row = rows.find((r) => r.name === 'vad' && r.code !== undefined);
    assert.ok(row, JSON.stringify(rows));
    assert.equal(row.code, 'PERCH_ERR_MODEL_CONFIG_MISMATCH');
    assert.match(row.reason, /'state'.*batchAxis/);
  } finally {
    await local.stop();
  }
});
