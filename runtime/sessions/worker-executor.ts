// Runs the session on its own worker thread: the event loop stays free while a batch runs
// (onnxruntime-node's run() blocks the thread that calls it). Input buffers are transferred,
// not copied (a 110 KB input's copy costs about 0.05 ms each way: docs/benchmarks.md, the hop's
// parts); outputs come back the same way. So a tensor that owns its buffer whole gives it up to
// run(): the request path builds new tensors for every batch, but a caller that runs the same
// tensor object again (a retry, a direct user of the executor) hands over a detached buffer. That
// run fails at once with PERCH_ERR_TENSOR_DATA, before anything is posted (a detached buffer in
// a transfer list made postMessage drop the run silently: it waited forever); pass a copy
// (data.slice()) to keep the tensor.
//
// A session thread that dies (an uncaught error, the thread exiting) fails the batches it held
// (whether they ran is unknown) and is started again from the model file; batches handed over
// meanwhile wait for the new thread, and the model instance prefers its other sessions while
// this one is not `available`. A thread that keeps crashing is restarted after longer and longer
// pauses. After RESTART_ATTEMPTS failed starts in a row the session is dead and every batch
// fails at once.
import { Worker } from 'node:worker_threads';
import { systemClock, type Clock, type TimerHandle } from '../base/clock.js';
import { PerchError } from '../base/errors.js';
import { trackThread } from '../base/full-collection.js';
import type { SessionConfig } from './session-config.js';
import type { Tensor } from '../tensor/tensor.js';
import type { Executor, ExecutorResult } from './executor.js';
import { detachedFeed, ownedFeeds, transferList, type FromWorker, type ToWorker } from './worker-protocol.js';
import { settleInTurn } from './result-turns.js';

const WORKER_URL = new URL('./session-worker.js', import.meta.url);
const RESTART_ATTEMPTS = 5;
/** Crashes this close together count as a loop: each restart waits longer. */
const CRASH_WINDOW_MS = 60_000;
/** Wait before a start: 100 ms, doubling with each recent crash or failed start, at most 5 s. */
const restartDelayMs = (attempt: number): number => Math.min(5000, 100 * 2 ** (attempt - 1));
/**
 * A session thread's JavaScript heap holds a few small objects (tensors live outside it). A
 * heap limit under 2 GiB also keeps V8 from mapping its builtins again next to this thread's
 * code (V8's "short builtin calls", on only where the heap limit is that large, i.e. hosts with
 * much more memory than a Pi): about 1 MiB of resident memory per thread
 * (docs/benchmarks.md, "Footprint and Perch's own time").
 */
const SESSION_THREAD_LIMITS = { maxOldGenerationSizeMb: 512 };

export interface WorkerExecutorOptions {
  /** The worker script (tests swap in one that crashes); default session-worker.js. */
  workerUrl?: URL;
  /** Times the pauses before a restart. */
  clock?: Clock;
}

type Ready = Extract<FromWorker, { type: 'ready' }>;
type Outcome = Extract<FromWorker, { type: 'result' | 'failed' }>;

interface Pending {
  resolve: (r: ExecutorResult) => void;
  reject: (e: Error) => void;
}

/** Starts a session thread and waits for its session to open; terminates it on failure. */
async function startWorker(url: URL, path: string, cfg: SessionConfig): Promise<{ worker: Worker; ready: Ready }> {
  const worker = new Worker(url, { workerData: { path, config: cfg }, resourceLimits: SESSION_THREAD_LIMITS });
  // Listeners for the loading phase only. (Never worker.removeAllListeners(): Worker forwards its
  // port's messages through its own 'newListener' hooks, which that would remove too.)
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- EventEmitter listener type
  const loading: Array<[string, (...args: any[]) => void]> = [];
  const ready = await new Promise<Ready>((resolve, reject) => {
    const onMessage = (msg: FromWorker): void => {
      if (msg.type === 'ready') resolve(msg);
      else if (msg.type === 'error') reject(new PerchError('PERCH_ERR_MODEL_LOAD_FAILED', msg.message));
    };
    const onExit = (code: number): void => reject(new PerchError('PERCH_ERR_MODEL_LOAD_FAILED', `session worker exited with code ${code} while loading`));
    loading.push(['message', onMessage], ['error', reject], ['exit', onExit]);
    for (const [event, fn] of loading) worker.on(event, fn);
  })
    .catch(async (err: Error) => {
      await worker.terminate();
      throw err;
    })
    .finally(() => {
      for (const [event, fn] of loading) worker.off(event, fn);
    });
  return { worker, ready };
}

export async function createWorkerExecutor(path: string, cfg: SessionConfig, opts: WorkerExecutorOptions = {}): Promise<Executor> {
  const url = opts.workerUrl ?? WORKER_URL;
  const clock = opts.clock ?? systemClock;
  const first = await startWorker(url, path, cfg);
  const pending = new Map<number, Pending>();
  /** Runs handed over while the thread restarts: posted once it is up. */
  const waiting: Array<Extract<ToWorker, { type: 'run' }>> = [];
  let worker: Worker | null = null;
  let nextId = 1;
  let dead: PerchError | null = null;
  let closing = false;
  let renewals = 0;
  /** Starts that failed in a row (reset by one that works), and when recent crashes were. */
  let failedStarts = 0;
  let crashes: number[] = [];
  let restartTimer: TimerHandle | null = null;
  let starting: Promise<unknown> | null = null;
  let onClosed: (() => void) | null = null;

  function post(msg: Extract<ToWorker, { type: 'run' }>): void {
    if (!worker) {
      waiting.push(msg);
      return;
    }
    // Checked here, not in run(): a run that waited for a restart may share a tensor with one
    // posted before it.
    const moved = detachedFeed(msg.feeds);
    if (moved) {
      settle(msg.id, new PerchError('PERCH_ERR_TENSOR_DATA', `tensor '${moved.name}': its buffer was moved to a session thread by an earlier run (inputs are transferred, not copied); run a copy of it`));
      return;
    }
    try {
      worker.postMessage(msg, transferList(msg.feeds));
    } catch (err) {
      // Not cloneable: this run fails, the thread and the other runs go on.
      settle(msg.id, new PerchError('PERCH_ERR_INFERENCE_FAILED', `batch could not be handed to the session thread: ${(err as Error).message}`));
    }
  }

  function settle(id: number, err: PerchError): void {
    pending.get(id)?.reject(err);
    pending.delete(id);
  }

  /**
   * Results the thread sent, settled in arrival order within the turn's budget (result-turns.ts):
   * one settleInTurn call per result, each settling the oldest still here.
   */
  const arrived: Outcome[] = [];

  function settleOldest(): void {
    const msg = arrived.shift();
    if (!msg) return; // settled already by failAll
    const p = pending.get(msg.id);
    if (!p) return;
    pending.delete(msg.id);
    if (msg.type === 'result') p.resolve({ outputs: msg.outputs, runMs: msg.runMs, returned: msg.inputs, owned: true });
    else p.reject(new PerchError('PERCH_ERR_INFERENCE_FAILED', msg.message));
  }

  function failAll(err: PerchError): void {
    // Runs the thread answered before it died (or the session closed) keep their answers.
    while (arrived.length > 0) settleOldest();
    for (const p of pending.values()) p.reject(err);
    pending.clear();
    waiting.length = 0;
  }

  function attach(w: Worker): void {
    worker = w;
    trackThread(w);
    w.on('message', (msg: FromWorker) => {
      if (msg.type === 'result' || msg.type === 'failed') {
        arrived.push(msg);
        settleInTurn(settleOldest);
      } else if (msg.type === 'closed') {
        onClosed?.();
      } else if (msg.type === 'renewed') {
        renewals++;
      }
    });
    w.on('error', (err) => lost(w, `session worker crashed: ${err.message}`, err));
    w.on('exit', (code) => lost(w, `session worker exited (code ${code})`));
  }

  /** The thread died (error and exit both report it; the first one counts). */
  function lost(w: Worker, message: string, cause?: Error): void {
    if (closing) onClosed?.();
    if (w !== worker || closing || dead) return;
    worker = null;
    // Every pending run was posted to the thread that died (nothing waits while one is up).
    failAll(new PerchError('PERCH_ERR_INFERENCE_FAILED', message, { cause }));
    const now = clock.now();
    crashes = crashes.filter((t) => now - t < CRASH_WINDOW_MS);
    crashes.push(now);
    restart(crashes.length);
  }

  /** Starts a new thread after a pause that grows with recent crashes and failed starts. */
  function restart(attempt: number): void {
    if (closing) return;
    restartTimer = clock.setTimeout(() => {
      restartTimer = null;
      const start = startWorker(url, path, cfg).then(
        ({ worker: w }) => {
          if (closing) {
            w.on('error', () => undefined);
            return w.terminate();
          }
          failedStarts = 0;
          attach(w);
          for (const msg of waiting.splice(0)) post(msg);
          return undefined;
        },
        (err: Error) => {
          if (closing) return;
          failedStarts++;
          if (failedStarts >= RESTART_ATTEMPTS) {
            dead = new PerchError('PERCH_ERR_INFERENCE_FAILED', `session worker could not be started again after ${RESTART_ATTEMPTS} attempts: ${err.message}`, { cause: err });
            failAll(dead);
          } else {
            restart(attempt + 1);
          }
        },
      );
      starting = start;
      void start.finally(() => {
        if (starting === start) starting = null;
      });
    }, restartDelayMs(attempt));
  }

  attach(first.worker);
  return {
    inputs: first.ready.inputs,
    outputs: first.ready.outputs,
    providers: first.ready.providers,
    warnings: first.ready.warnings,
    get available(): boolean {
      return worker !== null && !closing;
    },
    get renewals(): number {
      return renewals;
    },
    run(feeds: Tensor[]): Promise<ExecutorResult> {
      if (dead) return Promise.reject(dead);
      const id = nextId++;
      return new Promise((resolve, reject) => {
        pending.set(id, { resolve, reject });
        post({ type: 'run', id, feeds: ownedFeeds(feeds) });
      });
    },
    async close(): Promise<void> {
      if (closing) return;
      closing = true;
      dead ??= new PerchError('PERCH_ERR_MODEL_NOT_READY', 'session closed');
      failAll(dead);
      if (restartTimer) clock.clearTimeout(restartTimer);
      await starting; // a thread being started is terminated as soon as it is up
      const w = worker;
      if (!w) return;
      const closed = new Promise<void>((resolve) => (onClosed = resolve));
      w.postMessage({ type: 'close' } satisfies ToWorker);
      await closed;
      await w.terminate();
    },
  };
}
