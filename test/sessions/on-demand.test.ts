// model.json `session.startInstances` (docs/models.md): sessions past it open only when every
// open session is busy, warmed up before they take a batch; until then the device pays for none
// of their threads. A session that fails to open does not fail the batches the open one serves,
// and is tried again only after a pause.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { systemClock } from '../../runtime/base/clock.js';
import { PerchError } from '../../runtime/base/errors.js';
import { trackedThreads } from '../../runtime/base/full-collection.js';
import { InferenceMetrics } from '../../runtime/base/metrics.js';
import { ModelInstance } from '../../runtime/batching/model-instance.js';
import { prepareInputs } from '../../runtime/batching/prepare.js';
import { modelConfigSchema } from '../../runtime/models/model-config.js';
import { createInlineExecutor } from '../../runtime/sessions/inline-executor.js';
import { createOnDemandExecutor, REOPEN_AFTER_MS } from '../../runtime/sessions/on-demand-executor.js';
import type { SessionConfig } from '../../runtime/sessions/session-config.js';
import type { Tensor } from '../../runtime/tensor/tensor.js';
import { FakeClock } from '../helpers/fake-clock.js';
import { MODEL_FILES } from '../helpers/paths.js';
import { shippedModelConfig } from '../helpers/repository.js';
import { waitFor } from '../helpers/wait.js';

const INLINE: SessionConfig = { intraOpNumThreads: 1, interOpNumThreads: 1, executionProviders: ['cpu'], graphOptimizationLevel: 'all', instances: 1, executor: 'inline' };

function vadFeeds(seed: number): Tensor[] {
  return [
    { name: 'input', datatype: 'FP32', shape: [1, 576], data: new Float32Array(576).map((_, i) => Math.sin(i * 0.01 * (seed + 1))) },
    { name: 'state', datatype: 'FP32', shape: [2, 1, 128], data: new Float32Array(256) },
    { name: 'sr', datatype: 'INT64', shape: [], data: BigInt64Array.from([16000n]) },
  ];
}

describe('sessions opened on demand', () => {
  test('the shipped silero-vad opens one session thread; a burst opens the second, and every answer is right', async () => {
    const shipped = shippedModelConfig('silero-vad') as { session: { instances: number; startInstances?: number } };
    assert.equal(shipped.session.instances, 2);
    assert.equal(shipped.session.startInstances, 1, 'models/silero-vad/model.json ships the second session on demand');
    const file = modelConfigSchema.parse({ ...shipped, sequence: undefined });
    const before = trackedThreads();
    const instance = await ModelInstance.load('vad', 1, MODEL_FILES.sileroVad16k, file, { clock: systemClock, metrics: new InferenceMetrics() });
    const reference = await createInlineExecutor(MODEL_FILES.sileroVad16k, INLINE);
    try {
      assert.equal(trackedThreads(), before + 1, 'one session thread after load');
      assert.equal(instance.sessionsToOpen, true, 'the second session is still to open');
      // One request at a time never finds the open session busy.
      for (let i = 0; i < 5; i++) await instance.infer(prepareInputs(instance.config, vadFeeds(i)));
      assert.equal(trackedThreads(), before + 1, 'no second thread for sequential requests');

      // Bursts of concurrent requests: batches queue behind the busy session, so the second opens.
      const burst = async (n: number): Promise<void> => {
        const answers = await Promise.all(Array.from({ length: n }, (_, i) => instance.infer(prepareInputs(instance.config, vadFeeds(i)))));
        for (const [i, outputs] of answers.entries()) {
          const expected = (await reference.run(vadFeeds(i))).outputs;
          const got = outputs.find((t) => t.name === 'output')?.data as Float32Array;
          const want = expected.find((t) => t.name === 'output')?.data as Float32Array;
          assert.ok(Math.abs((got[0] as number) - (want[0] as number)) < 1e-5, `answer ${i}: ${got[0]} vs ${want[0]}`);
        }
      };
      await waitFor(async () => {
        await burst(200);
        return trackedThreads() === before + 2;
      }, 60_000, () => `a second session thread (threads ${trackedThreads() - before})`);
      await burst(200); // served by both sessions
      // A busy dispatch after the second session opened found nothing left to open: from then on
      // demandMore() does not walk the sessions again.
      assert.equal(instance.sessionsToOpen, false, 'nothing left to open');
    } finally {
      await instance.retire();
      await reference.close();
    }
    await waitFor(() => trackedThreads() === before, 20_000, 'both session threads closed');
  });

  test('a session that cannot open fails only a batch it was given, and is tried again after a pause', async () => {
    const clock = new FakeClock();
    const like = await createInlineExecutor(MODEL_FILES.sileroVad16k, INLINE);
    let opens = 0;
    let broken = true;
    const executor = createOnDemandExecutor(like, async () => {
      opens++;
      if (broken) throw new PerchError('PERCH_ERR_MODEL_LOAD_FAILED', 'model file went away');
      return createInlineExecutor(MODEL_FILES.sileroVad16k, INLINE);
    }, clock);
    try {
      assert.equal(executor.available, false);
      assert.equal(executor.opened, false);
      assert.deepEqual(executor.inputs, like.inputs);
      executor.demand?.();
      await waitFor(() => opens === 1, 5000, 'the first open');
      // Failed: a demand right after does not reread the file...
      await new Promise((r) => setImmediate(r));
      executor.demand?.();
      assert.equal(opens, 1);
      // ...a run handed to it (no other session up) tries, and fails with the cause.
      await assert.rejects(executor.run(vadFeeds(0)), (err: unknown) => err instanceof PerchError && err.code === 'PERCH_ERR_MODEL_LOAD_FAILED');
      assert.equal(opens, 2);
      broken = false;
      clock.advance(REOPEN_AFTER_MS);
      executor.demand?.();
      await waitFor(() => executor.available, 10_000, 'the session opened');
      assert.equal(opens, 3);
      const { outputs } = await executor.run(vadFeeds(0));
      assert.deepEqual(outputs.find((t) => t.name === 'output')?.shape, [1, 1]);
    } finally {
      await executor.close();
      await like.close();
    }
    await assert.rejects(executor.run(vadFeeds(0)), (err: unknown) => err instanceof PerchError && err.code === 'PERCH_ERR_MODEL_NOT_READY');
  });
});
