// After a burst a session thread that ran a large batch opens its session again, to give back
// what onnxruntime's arena kept (runtime/sessions/session-renewal.ts, docs/reliability.md
// "Memory after a burst"): the renewal happens on COLLECT, and the renewed session answers as
// the old one did, with runs in flight on the old session finishing on it.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { collectThreadsDone } from '../../runtime/base/full-collection.js';
import type { SessionConfig } from '../../runtime/sessions/session-config.js';
import { RENEW_AFTER_INPUT_BYTES, zeroFeeds } from '../../runtime/sessions/session-renewal.js';
import { createWorkerExecutor } from '../../runtime/sessions/worker-executor.js';
import { clsInput, rawRun } from '../helpers/models.js';
import { MODEL_FILES } from '../helpers/paths.js';
import { waitFor } from '../helpers/wait.js';
import type { Tensor } from '../../runtime/tensor/tensor.js';

const CONFIG: SessionConfig = { intraOpNumThreads: 1, interOpNumThreads: 1, executionProviders: ['cpu'], graphOptimizationLevel: 'all', instances: 1, executor: 'worker' };

test('a session thread that ran a batch of 1 MiB or more renews its session on COLLECT and answers the same after it', async () => {
  // New tensors for every run: a run moves its input buffers to the session thread.
  const big = (): Tensor[] => clsInput(5, 16); // 16 images of 1x3x48x192 FP32: 1.77 MB
  assert.ok((big()[0]!.data as Float32Array).byteLength >= RENEW_AFTER_INPUT_BYTES);
  const small = (): Tensor[] => clsInput(6);
  const expectedBig = await rawRun(MODEL_FILES.ocrCls, big());
  const expectedSmall = await rawRun(MODEL_FILES.ocrCls, small());
  const ex = await createWorkerExecutor(MODEL_FILES.ocrCls, CONFIG);
  try {
    assert.deepEqual((await ex.run(big())).outputs, expectedBig);
    assert.equal(ex.renewals, 0);
    const collected = collectThreadsDone(60_000);
    // A run posted right behind COLLECT waits for the renewal and is answered by the new session.
    assert.deepEqual((await ex.run(small())).outputs, expectedSmall);
    await waitFor(() => ex.renewals === 1, 60_000, 'the session renewed');
    assert.equal(await collected, 1);
    assert.deepEqual((await ex.run(small())).outputs, expectedSmall);
    assert.deepEqual((await ex.run(big())).outputs, expectedBig);
    // Only what ran since the last renewal counts: this batch makes the next idle moment renew again.
    // A COLLECT with a port is answered, after the renewal (the idle collector then trims).
    assert.equal(await collectThreadsDone(60_000), 1);
    await waitFor(() => ex.renewals === 2, 60_000, 'the session renewed again after another large batch');
    assert.deepEqual((await ex.run(big())).outputs, expectedBig);
  } finally {
    await ex.close();
  }
});

test('zeroFeeds: zeros at batch 1 for a dynamic first axis; null for another dynamic axis or strings', () => {
  const feeds = zeroFeeds([{ name: 'x', isTensor: true, type: 'float32', shape: [-1, 3, 4, 5] }, { name: 'sr', isTensor: true, type: 'int64', shape: [] }]);
  assert.deepEqual(feeds?.x?.dims, [1, 3, 4, 5]);
  assert.equal((feeds?.x?.data as Float32Array).every((v) => v === 0), true);
  assert.deepEqual(feeds?.sr?.dims, []);
  assert.equal(zeroFeeds([{ name: 'x', isTensor: true, type: 'float32', shape: ['batch', 3, 'h', 5] }]), null);
  assert.equal(zeroFeeds([{ name: 't', isTensor: true, type: 'string', shape: [1] }]), null);
  assert.deepEqual(zeroFeeds([{ name: 'x', isTensor: true, type: 'float32', shape: ['batch', 2] }])?.x?.dims, [1, 2]);
});
