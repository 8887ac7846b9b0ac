// A session opened the first time every open session of its model is busy (model.json
// `session.startInstances`, docs/models.md): a device whose load never needs the extra session
// never pays for its thread and its copy of the model (about 13 MiB each for silero-vad,
// docs/benchmarks.md "Footprint and Perch's own time"). Until it is open it is not `available`,
// so the model instance hands it nothing while another session can take the batch.
import type { Clock } from '../base/clock.js';
import { PerchError } from '../base/errors.js';
import type { Tensor } from '../tensor/tensor.js';
import type { Executor, ExecutorResult } from './executor.js';

/** After a failed open, a demand tries again only this much later (a broken file is not reread per batch). */
export const REOPEN_AFTER_MS = 30_000;

/**
 * `like`: an open session of the same model (its metadata is this one's). `open` creates the
 * session and warms it up; it runs on the first demand, or on a run while no other session is up.
 */
export function createOnDemandExecutor(like: Executor, open: () => Promise<Executor>, clock: Clock): Executor {
  let inner: Executor | null = null;
  let opening: Promise<Executor> | null = null;
  let failedAt = Number.NEGATIVE_INFINITY;
  let closed = false;
  const closedError = (): PerchError => new PerchError('PERCH_ERR_MODEL_NOT_READY', 'session closed');

  function start(): Promise<Executor> {
    opening ??= open().then(
      async (e) => {
        if (closed) {
          await e.close();
          throw closedError();
        }
        inner = e;
        return e;
      },
      (err: unknown) => {
        opening = null;
        failedAt = clock.now();
        throw err;
      },
    );
    return opening;
  }

  return {
    inputs: like.inputs,
    outputs: like.outputs,
    providers: like.providers,
    warnings: like.warnings,
    get available(): boolean {
      return inner !== null && inner.available;
    },
    get opened(): boolean {
      return inner !== null;
    },
    demand(): void {
      if (inner || opening || closed || clock.now() - failedAt < REOPEN_AFTER_MS) return;
      start().catch(() => undefined); // the next demand (or run) tries again
    },
    async run(feeds: Tensor[]): Promise<ExecutorResult> {
      if (closed) throw closedError();
      const e = inner ?? (await start());
      return e.run(feeds);
    },
    async close(): Promise<void> {
      closed = true;
      const e = inner ?? (opening ? await opening.catch(() => null) : null);
      await e?.close();
    },
  };
}
