// A session thread's results are settled within a budget per turn of the event loop
// (runtime/sessions/result-turns.ts): a burst of them, delivered in one worker message callback,
// lets the check phase (and the next poll phase: a health request's read) in before its last
// one, where it once answered the whole chain first (docs/reliability.md "The main port's p99:
// waiting for a core").
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { afterEach, describe, test } from 'node:test';
import type { SessionConfig } from '../../runtime/sessions/session-config.js';
import { createWorkerExecutor } from '../../runtime/sessions/worker-executor.js';
import { SETTLE_TURN_MS, settleInTurn } from '../../runtime/sessions/result-turns.js';
import type { Tensor } from '../../runtime/tensor/tensor.js';
import { MODEL_FILES } from '../helpers/paths.js';
import { waitFor } from '../helpers/wait.js';

const BURST_WORKER = new URL('../helpers/burst-session-worker.js', import.meta.url);
const CONFIG: SessionConfig = { intraOpNumThreads: 1, interOpNumThreads: 1, executionProviders: ['cpu'], graphOptimizationLevel: 'all', instances: 1, executor: 'worker' };
const BURST = 12;
/** Main-thread work per result's answers: a burst holds several budgets of it. */
const WORK_MS = SETTLE_TURN_MS / 2.5;

/** CPU on the main thread, as answering a batch's requests takes (not a sleep: nothing else runs meanwhile). */
function work(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until);
}

function feeds(): Tensor[] {
  return [{ name: 'input', datatype: 'FP32', shape: [1, 4], data: new Float32Array(4) }];
}

describe('session results settled within a turn budget', () => {
  afterEach(() => {
    delete process.env.PERCH_TEST_BURST;
  });

  test('a burst of results in one callback lets a queued setImmediate run before its last, and close keeps those waiting', async () => {
    process.env.PERCH_TEST_BURST = String(BURST);
    const executor = await createWorkerExecutor(MODEL_FILES.sileroVad16k, CONFIG, { workerUrl: BURST_WORKER });
    const order: string[] = [];
    let closing: Promise<void> | null = null;
    const runs = Array.from({ length: BURST }, (_, i) =>
      executor.run(feeds()).then(() => {
        order.push(`result ${i}`);
        if (i === 0) {
          setImmediate(() => {
            order.push('immediate');
            // Results still waiting for their turn are answered, not failed, by a close.
            closing = executor.close();
          });
        }
        work(WORK_MS);
      }),
    );
    const outcomes = await Promise.allSettled(runs);
    await waitFor(() => closing !== null, 20_000, 'the immediate');
    await closing;
    assert.deepEqual(outcomes.map((o) => o.status), new Array(BURST).fill('fulfilled'));
    const at = order.indexOf('immediate');
    assert.ok(at > 0 && at < BURST, `the immediate ran at ${at} of ${order.join(', ')}`);
    assert.deepEqual(order.filter((e) => e !== 'immediate'), Array.from({ length: BURST }, (_, i) => `result ${i}`));
  });

  test('settlements past the budget run in order, in later phases', async () => {
    const ran: number[] = [];
    const phases: number[] = [];
    let phase = 0;
    const tick = (): void => {
      phase++;
      if (ran.length < 20) setImmediate(tick);
    };
    setImmediate(tick);
    for (let i = 0; i < 20; i++) {
      settleInTurn(() => {
        ran.push(i);
        phases.push(phase);
        work(SETTLE_TURN_MS / 4);
      });
    }
    await waitFor(() => ran.length === 20);
    assert.deepEqual(ran, Array.from({ length: 20 }, (_, i) => i));
    assert.equal(phases[0], 0, 'the first settles at once');
    assert.ok((phases.at(-1) as number) >= 3, `20 settlements of a quarter budget each spread over phases: ${phases.join(',')}`);
  });
});
