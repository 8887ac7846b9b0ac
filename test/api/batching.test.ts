// Many concurrent requests with different inputs: each answer equals its own unbatched result,
// and the metrics show that they ran in batches larger than 1. The batch is made deterministic
// with a long maxQueueDelayMs: it is dispatched when it is full, not when a timer says so.
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { WsClient } from '../helpers/clients.js';
import { clsInput, rawRun, releaseRawSessions, vadInputs } from '../helpers/models.js';
import { MODEL_FILES } from '../helpers/paths.js';
import { TempRepository } from '../helpers/repository.js';
import { startRuntime } from '../helpers/runtime.js';
import type { Tensor } from '../../runtime/tensor/tensor.js';

function assertClose(got: Tensor[], want: Tensor[], tol: number, what: string): void {
  for (const w of want) {
    const g = got.find((t) => t.name === w.name);
    assert.ok(g, `${what}: ${w.name} missing`);
    assert.deepEqual(g.shape, w.shape, `${what}: ${w.name} shape`);
    const a = g.data as Float32Array;
    const b = w.data as Float32Array;
    for (let i = 0; i < b.length; i++) {
      assert.ok(Math.abs((a[i] as number) - (b[i] as number)) <= tol, `${what}: ${w.name}[${i}] ${a[i]} != ${b[i]}`);
    }
  }
}

async function metric(baseUrl: string, name: string, model: string): Promise<number> {
  const text = await (await fetch(`${baseUrl}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name}{`) && l.includes(`model="${model}"`));
  return line ? Number(line.split(' ').pop()) : 0;
}

const VAD_CONFIG = {
  maxBatchSize: 32,
  inputs: [
    { name: 'input', datatype: 'FP32', dims: [-1, -1] },
    { name: 'state', datatype: 'FP32', dims: [2, -1, 128], batchAxis: 1 },
    { name: 'sr', datatype: 'INT64', dims: [], batchAxis: null },
  ],
  outputs: [
    { name: 'output', datatype: 'FP32', dims: [-1, 1] },
    { name: 'stateN', datatype: 'FP32', dims: [2, -1, 128], batchAxis: 1 },
  ],
  batching: { maxQueueDelayMs: 10000 },
  warmup: { inputs: { sr: { data: [16000] } } },
};

describe('dynamic batching end to end', () => {
  after(releaseRawSessions);

  test('64 concurrent classifier requests: one batch of 64, each answer its own', async () => {
    const repo = new TempRepository({
      cls: { versions: { 1: MODEL_FILES.ocrCls }, config: { maxBatchSize: 64, batching: { maxQueueDelayMs: 10000 } } },
    });
    const rt = await startRuntime(repo.dir);
    const clients = await Promise.all(Array.from({ length: 8 }, () => WsClient.connect(rt.wsUrl)));
    try {
      const inputs = Array.from({ length: 64 }, (_, i) => clsInput(1000 + i));
      const answers = await Promise.all(inputs.map((inp, i) => clients[i % 8]!.infer('cls', inp, { binary: i % 2 === 0 })));
      for (let i = 0; i < 64; i++) {
        assert.ok(answers[i]!.ok, JSON.stringify(answers[i]!.body));
        assertClose(answers[i]!.outputs, await rawRun(MODEL_FILES.ocrCls, inputs[i]!), 1e-5, `request ${i}`);
      }
      assert.equal(await metric(rt.baseUrl, 'perch_inference_count_total', 'cls'), 64);
      assert.equal(await metric(rt.baseUrl, 'perch_inference_exec_count_total', 'cls'), 1);
    } finally {
      await Promise.all(clients.map((c) => c.close()));
      await rt.stop();
      repo.remove();
    }
  });

  test('silero-vad: state stacked on axis 1, requests grouped by their unbatched sample rate', async () => {
    const repo = new TempRepository({ vad: { versions: { 1: MODEL_FILES.sileroVad }, config: VAD_CONFIG } });
    // One connection with 64 requests in flight (the default is 16: docs/config.md).
    const rt = await startRuntime(repo.dir, { server: { maxInflightPerConnection: 64 } });
    const ws = await WsClient.connect(rt.wsUrl);
    try {
      // 32 at 16 kHz and 32 at 8 kHz, interleaved: two full batches, never mixed.
      // MANIFEST: 8 kHz chunks are 256 samples + 32 of context.
      const inputs = Array.from({ length: 64 }, (_, i) => vadInputs(500 + i, 1, i % 2 ? 8000 : 16000, i % 2 ? 288 : 576));
      const answers = await Promise.all(inputs.map((inp, i) => ws.infer('vad', inp, { binary: i % 3 === 0 })));
      for (let i = 0; i < 64; i++) {
        assert.ok(answers[i]!.ok, JSON.stringify(answers[i]!.body));
        // MANIFEST: batched VAD streams are bit-identical to running each alone.
        assertClose(answers[i]!.outputs, await rawRun(MODEL_FILES.sileroVad, inputs[i]!), 0, `stream ${i}`);
      }
      assert.equal(await metric(rt.baseUrl, 'perch_inference_exec_count_total', 'vad'), 2);
    } finally {
      await ws.close();
      await rt.stop();
      repo.remove();
    }
  });

  test('a request carrying several items is split back to exactly its own rows', async () => {
    const repo = new TempRepository({ vad: { versions: { 1: MODEL_FILES.sileroVad }, config: { ...VAD_CONFIG, maxBatchSize: 8 } } });
    const rt = await startRuntime(repo.dir);
    const ws = await WsClient.connect(rt.wsUrl);
    try {
      const inputs = [vadInputs(1, 3), vadInputs(2, 5)]; // 3 + 5 = 8 items: one full batch
      const answers = await Promise.all(inputs.map((inp) => ws.infer('vad', inp, { binary: true })));
      for (let i = 0; i < 2; i++) assertClose(answers[i]!.outputs, await rawRun(MODEL_FILES.sileroVad, inputs[i]!), 0, `request ${i}`);
      assert.equal(await metric(rt.baseUrl, 'perch_inference_exec_count_total', 'vad'), 1);
    } finally {
      await ws.close();
      await rt.stop();
      repo.remove();
    }
  });
});
