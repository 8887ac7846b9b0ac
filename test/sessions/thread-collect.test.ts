// After a burst the idle collector asks every worker thread to collect its own heap
// (runtime/base/full-collection.ts, docs/reliability.md "Memory after a burst"): session threads
// are registered while they live, answer COLLECT (on the port it carries, when it carries one) and
// go on running batches.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { collectThreadsDone, trackedThreads } from '../../runtime/base/full-collection.js';
import type { SessionConfig } from '../../runtime/sessions/session-config.js';
import { createWorkerExecutor } from '../../runtime/sessions/worker-executor.js';
import { vadInputs } from '../helpers/models.js';
import { MODEL_FILES } from '../helpers/paths.js';
import { waitFor } from '../helpers/wait.js';

const CONFIG: SessionConfig = { intraOpNumThreads: 1, interOpNumThreads: 1, executionProviders: ['cpu'], graphOptimizationLevel: 'all', instances: 1, executor: 'worker' };

test('session threads are asked to collect while they live, and run batches after it', async () => {
  const before = trackedThreads();
  const a = await createWorkerExecutor(MODEL_FILES.sileroVad16k, CONFIG);
  const b = await createWorkerExecutor(MODEL_FILES.sileroVad16k, CONFIG);
  try {
    await a.run(vadInputs(1));
    // Every thread is asked and says when its collection is done (the idle collector then trims).
    assert.equal(await collectThreadsDone(), before + 2);
    // COLLECT is not a run: the threads answer the next batches, and nothing else.
    const [ra, rb] = await Promise.all([a.run(vadInputs(2)), b.run(vadInputs(3))]);
    assert.deepEqual(ra.outputs.find((t) => t.name === 'output')?.shape, [1, 1]);
    assert.deepEqual(rb.outputs.find((t) => t.name === 'output')?.shape, [1, 1]);
  } finally {
    await a.close();
  }
  // A thread that exited is no longer asked.
  await waitFor(() => trackedThreads() === before + 1, 20_000, 'the closed session thread unregistered');
  await b.close();
  await waitFor(() => trackedThreads() === before, 20_000, 'both threads unregistered');
});
