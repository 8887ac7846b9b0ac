// Runs the session on the main thread. onnxruntime-node's run() is synchronous native code
// behind a setImmediate, so the event loop is blocked for the whole run: only for models whose
// batches take well under a millisecond, where the worker's thread hop (~0.1 ms) would dominate.
import { PerchError } from '../base/errors.js';
import type { SessionConfig } from './session-config.js';
import type { Tensor } from '../tensor/tensor.js';
import type { Executor, ExecutorResult } from './executor.js';
import { fromOrtResults, openSession, toOrtFeeds, type OpenedSession } from './ort-session.js';

export async function createInlineExecutor(path: string, cfg: SessionConfig): Promise<Executor> {
  const opened: OpenedSession = await openSession(path, cfg);
  const { session } = opened;
  return {
    inputs: opened.inputs,
    outputs: opened.outputs,
    providers: opened.providers,
    warnings: opened.warnings,
    available: true,
    async run(feeds: Tensor[]): Promise<ExecutorResult> {
      try {
        const started = performance.now();
        const results = await session.run(toOrtFeeds(feeds));
        // fromOrtResults' arrays are onnxruntime-node's new copies: nobody else holds them.
        return { outputs: fromOrtResults(results), runMs: performance.now() - started, owned: true };
      } catch (err) {
        throw new PerchError('PERCH_ERR_INFERENCE_FAILED', (err as Error).message, { cause: err });
      }
    },
    close: () => session.release(),
  };
}
