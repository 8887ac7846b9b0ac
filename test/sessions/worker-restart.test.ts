// A session thread that dies fails only the batch it held: the executor starts a new thread from
// the model file, and batches handed over meanwhile wait for it. A session that cannot be
// started again fails every batch with a clear error instead of hanging.
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, test } from 'node:test';
import { PerchError } from '../../runtime/base/errors.js';
import type { SessionConfig } from '../../runtime/sessions/session-config.js';
import { createWorkerExecutor } from '../../runtime/sessions/worker-executor.js';
import type { Tensor } from '../../runtime/tensor/tensor.js';
import { systemClock } from '../../runtime/base/clock.js';
import { prepareInputs } from '../../runtime/batching/prepare.js';
import { InferenceMetrics } from '../../runtime/base/metrics.js';
import { modelConfigSchema } from '../../runtime/models/model-config.js';
import { ModelInstance } from '../../runtime/batching/model-instance.js';
import { MODEL_FILES } from '../helpers/paths.js';
import { shippedModelConfig } from '../helpers/repository.js';

const CRASHING_WORKER = new URL('../helpers/crashing-session-worker.js', import.meta.url);
const CONFIG: SessionConfig = { intraOpNumThreads: 1, interOpNumThreads: 1, executionProviders: ['cpu'], graphOptimizationLevel: 'all', instances: 1, executor: 'worker' };

function vadFeeds(): Tensor[] {
  return [
    { name: 'input', datatype: 'FP32', shape: [1, 576], data: new Float32Array(576).fill(0.01) },
    { name: 'state', datatype: 'FP32', shape: [2, 1, 128], data: new Float32Array(256) },
    { name: 'sr', datatype: 'INT64', shape: [], data: BigInt64Array.from([16000n]) },
  ];
}

function failure(code: string, message: RegExp): (err: unknown) => boolean {
  return (err) => err instanceof PerchError && err.code === code && message.test(err.message);
}

describe('session worker restart', () => {
  const marker = join(tmpdir(), `perch-crash-${process.pid}`);
  afterEach(() => {
    delete process.env.PERCH_TEST_CRASH_MARKER;
    delete process.env.PERCH_TEST_FAIL_RESTART;
    delete process.env.PERCH_TEST_CRASH_AT_RUN;
    rmSync(marker, { force: true });
  });

  test('the batch a dying thread held fails; the next one runs on a new thread', async () => {
    process.env.PERCH_TEST_CRASH_MARKER = marker;
    const executor = await createWorkerExecutor(MODEL_FILES.sileroVad16k, CONFIG, { workerUrl: CRASHING_WORKER });
    try {
      await assert.rejects(executor.run(vadFeeds()), failure('PERCH_ERR_INFERENCE_FAILED', /exited \(code 3\)/));
      // Handed over while the thread restarts: it waits for the new one.
      const { outputs } = await executor.run(vadFeeds());
      assert.deepEqual(outputs.find((t) => t.name === 'output')?.shape, [1, 1]);
      const again = await executor.run(vadFeeds());
      assert.equal(again.outputs.length, 2);
    } finally {
      await executor.close();
    }
  });

  test('a session that cannot be started again fails its batches, and close still returns', async () => {
    process.env.PERCH_TEST_CRASH_MARKER = marker;
    process.env.PERCH_TEST_FAIL_RESTART = '1';
    const executor = await createWorkerExecutor(MODEL_FILES.sileroVad16k, CONFIG, { workerUrl: CRASHING_WORKER });
    try {
      await assert.rejects(executor.run(vadFeeds()), failure('PERCH_ERR_INFERENCE_FAILED', /exited \(code 3\)/));
      // Waits through five failed starts (0.1 + 0.2 + 0.4 + 0.8 + 1.6 s), then fails.
      await assert.rejects(executor.run(vadFeeds()), failure('PERCH_ERR_INFERENCE_FAILED', /could not be started again/));
      await assert.rejects(executor.run(vadFeeds()), failure('PERCH_ERR_INFERENCE_FAILED', /could not be started again/));
    } finally {
      await executor.close();
    }
  });

  test('a model with two sessions answers on the other one while one is down', async () => {
    process.env.PERCH_TEST_CRASH_MARKER = marker;
    process.env.PERCH_TEST_FAIL_RESTART = '1';
    process.env.PERCH_TEST_CRASH_AT_RUN = '2'; // the first run is the warm-up
    const shipped = shippedModelConfig('silero-vad');
    const file = modelConfigSchema.parse({ ...shipped, batching: { maxQueueDelayMs: 0 }, session: { instances: 2 } });
    const instance = await ModelInstance.load('vad', 1, MODEL_FILES.sileroVad16k, file, {
      clock: systemClock,
      metrics: new InferenceMetrics(),
      createExecutor: (path, cfg, index) => createWorkerExecutor(path, cfg, index === 0 ? { workerUrl: CRASHING_WORKER } : {}),
    });
    try {
      const request = () => instance.infer(prepareInputs(instance.config, vadFeeds()));
      await assert.rejects(request(), failure('PERCH_ERR_INFERENCE_FAILED', /exited \(code 3\)/));
      // The first session now restarts and never comes back; every request goes to the second
      // at once instead of waiting for it (or failing with it after five starts).
      for (let i = 0; i < 10; i++) assert.equal((await request()).length, 2);
    } finally {
      await instance.retire();
    }
  });
});
