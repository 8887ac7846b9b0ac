// A tensor run through a session thread gives its buffer up (the worker executor transfers it,
// worker-executor.ts): running the same tensor object again is refused at once with
// PERCH_ERR_TENSOR_DATA, never posted as a detached buffer (postMessage dropped such a run
// without a word and it waited forever) and never run on empty data. The thread goes on serving.
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { MessageChannel } from 'node:worker_threads';
import { join } from 'node:path';
import { afterEach, describe, test } from 'node:test';
import { PerchError } from '../../runtime/base/errors.js';
import type { SessionConfig } from '../../runtime/sessions/session-config.js';
import { createWorkerExecutor } from '../../runtime/sessions/worker-executor.js';
import { detachedFeed, transferList } from '../../runtime/sessions/worker-protocol.js';
import type { Tensor } from '../../runtime/tensor/tensor.js';
import { rawRun, vadInputs } from '../helpers/models.js';
import { MODEL_FILES } from '../helpers/paths.js';

const CRASHING_WORKER = new URL('../helpers/crashing-session-worker.js', import.meta.url);
const CONFIG: SessionConfig = { intraOpNumThreads: 1, interOpNumThreads: 1, executionProviders: ['cpu'], graphOptimizationLevel: 'all', instances: 1, executor: 'worker' };
// Bounds a hang (the defect this file is about) so it fails instead of stalling the suite.
const BOUND = { timeout: 60_000 };

const copy = (feeds: Tensor[]): Tensor[] => feeds.map((t) => ({ ...t, data: Array.isArray(t.data) ? t.data.slice() : t.data.slice() }));
const moved = (name: string) => (err: unknown): boolean =>
  err instanceof PerchError && err.code === 'PERCH_ERR_TENSOR_DATA' && err.message.includes(`'${name}'`) && /moved to a session thread/.test(err.message);

test('a moved buffer is found before posting and never put in a transfer list; an empty one is not moved', () => {
  const t: Tensor = { name: 'x', datatype: 'FP32', shape: [4], data: new Float32Array(4) };
  const empty: Tensor = { name: 'e', datatype: 'FP32', shape: [0], data: new Float32Array(0) };
  assert.equal(detachedFeed([t, empty]), undefined);
  assert.equal(transferList([t]).length, 1);
  const { port1, port2 } = new MessageChannel();
  port1.postMessage(null, transferList([t]));
  port1.close();
  port2.close();
  assert.equal(detachedFeed([empty, t]), t);
  assert.deepEqual(transferList([t, empty]), [], 'a detached buffer in a transfer list drops the message silently');
});

describe('a tensor run twice through a session thread', () => {
  const marker = join(tmpdir(), `perch-moved-${process.pid}`);
  afterEach(() => {
    delete process.env.PERCH_TEST_CRASH_MARKER;
    rmSync(marker, { force: true });
  });

  test('the second run is refused with PERCH_ERR_TENSOR_DATA; a copy runs and the thread still serves', BOUND, async () => {
    const executor = await createWorkerExecutor(MODEL_FILES.sileroVad16k, CONFIG);
    try {
      const feeds = vadInputs(7);
      const kept = copy(feeds);
      const expected = await rawRun(MODEL_FILES.sileroVad16k, kept);
      const first = await executor.run(feeds);
      assert.deepEqual(first.outputs.map((t) => t.data), expected.map((t) => t.data));
      assert.equal((feeds[0]!.data as Float32Array).length, 0, 'the input buffer was moved, not copied');
      await assert.rejects(executor.run(feeds), moved('input'));
      const again = await executor.run(copy(kept));
      assert.deepEqual(again.outputs.map((t) => t.data), expected.map((t) => t.data));
    } finally {
      await executor.close();
    }
  });

  test('two runs of one tensor handed over while the thread restarts: the first runs, the second is refused', BOUND, async () => {
    process.env.PERCH_TEST_CRASH_MARKER = marker;
    const executor = await createWorkerExecutor(MODEL_FILES.sileroVad16k, CONFIG, { workerUrl: CRASHING_WORKER });
    try {
      await assert.rejects(executor.run(vadInputs(1)), (err: unknown) => err instanceof PerchError && err.code === 'PERCH_ERR_INFERENCE_FAILED');
      // The thread is down (its restart waits 100 ms): both runs wait for the new one, and are
      // posted to it one after the other.
      assert.equal(executor.available, false);
      const feeds = vadInputs(8);
      const kept = copy(feeds);
      const runs = Promise.allSettled([executor.run(feeds), executor.run(feeds)]);
      const expected = await rawRun(MODEL_FILES.sileroVad16k, kept);
      const [first, second] = await runs;
      if (first?.status !== 'fulfilled') assert.fail(`the first run failed: ${String(first?.reason)}`);
      assert.deepEqual(first.value.outputs.map((t) => t.data), expected.map((t) => t.data));
      if (second?.status !== 'rejected') assert.fail('the second run was not refused');
      assert.ok(moved('input')(second.reason), String(second.reason));
      assert.equal((await executor.run(vadInputs(9))).outputs.length, 2);
    } finally {
      await executor.close();
    }
  });
});
