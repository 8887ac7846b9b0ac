// Runs the session on its own worker thread: the event loop stays free while a batch runs
// (onnxruntime-node's run() blocks the thread that calls it). Input buffers are transferred,
// not copied; outputs come back the same way.
//
// A session thread that dies (an uncaught error, the thread exiting) fails the batches it held
// (whether they ran is unknown) and is started again from the model file; batches handed over
// meanwhile wait for the new thread. After RESTART_ATTEMPTS failed starts in a row the session
// is dead and every batch fails at once, as before the first crash.
import { Worker } from 'node:worker_threads';
import { PerchError } from '../errors.js';
import type { SessionConfig } from '../models/model-config.js';
import type { Tensor } from '../tensor/tensor.js';
import type { Executor, ExecutorResult } from './executor.js';
import { ownedFeeds, transferList, type FromWorker, type ToWorker } from './worker-protocol.js';

const WORKER_URL = new URL('./session-worker.js', import.meta.url);
const RESTART_ATTEMPTS = 5;
/** Wait before the n-th start attempt in a row: 100 ms, doubling. */
const restartDelayMs = (attempt: number): number => 100 * 2 ** (attempt - 1);

export interface WorkerExecutorOptions {
  /** The worker script (tests swap in one that crashes); default session-worker.js. */
  workerUrl?: URL;
}

type Ready = Extract<FromWorker, { type: 'ready' }>;

interface Pending {
  resolve: (r: ExecutorResult) => void;
  reject: (e: Error) => void;
}

/** Starts a session thread and waits for its session to open; terminates it on failure. */
async function startWorker(url: URL, path: string, cfg: SessionConfig): Promise<{ worker: Worker; ready: Ready }> {
  const worker = new Worker(url, { workerData: { path, config: cfg } });
  // Listeners for the loading phase only. (Never worker.removeAllListeners(): Worker forwards its
  // port's messages through its own 'newListener' hooks, which that would remove too.)
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- EventEmitter listener type
  const loading: Array<[string, (...args: any[]) => void]> = [];
  const ready = await new Promise<Ready>((resolve, reject) => {
    const onMessage = (msg: FromWorker): void => {
      if (msg.type === 'ready') resolve(msg);
      else if (msg.type === 'error') reject(new Error(msg.message));
    };
    const onExit = (code: number): void => reject(new Error(`session worker exited with code ${code} while loading`));
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
  const first = await startWorker(url, path, cfg);
  const pending = new Map<number, Pending>();
  /** Runs handed over while the thread restarts: posted once it is up. */
  const waiting: ToWorker[] = [];
  let worker: Worker | null = null;
  let nextId = 1;
  let dead: PerchError | null = null;
  let closing = false;
  let failedStarts = 0;
  let onClosed: (() => void) | null = null;

  function post(msg: ToWorker): void {
    if (!worker) {
      waiting.push(msg);
      return;
    }
    worker.postMessage(msg, msg.type === 'run' ? transferList(msg.feeds) : []);
  }

  function failAll(err: PerchError): void {
    for (const p of pending.values()) p.reject(err);
    pending.clear();
    waiting.length = 0;
  }

  function attach(w: Worker): void {
    worker = w;
    w.on('message', (msg: FromWorker) => {
      if (msg.type === 'result' || msg.type === 'failed') {
        const p = pending.get(msg.id);
        if (!p) return;
        pending.delete(msg.id);
        if (msg.type === 'result') {
          failedStarts = 0;
          p.resolve({ outputs: msg.outputs, runMs: msg.runMs });
        } else {
          p.reject(new PerchError('PERCH_ERR_INFERENCE_FAILED', msg.message));
        }
      } else if (msg.type === 'closed') {
        onClosed?.();
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
    restart();
  }

  function restart(): void {
    failedStarts++;
    if (failedStarts > RESTART_ATTEMPTS) {
      dead = new PerchError('PERCH_ERR_INFERENCE_FAILED', `session worker could not be started again after ${RESTART_ATTEMPTS} attempts`);
      failAll(dead);
      return;
    }
    setTimeout(() => {
      if (closing) return;
      startWorker(url, path, cfg).then(
        ({ worker: w }) => {
          if (closing) {
            void w.terminate();
            return;
          }
          attach(w);
          for (const msg of waiting.splice(0)) post(msg);
        },
        () => restart(),
      );
    }, restartDelayMs(failedStarts));
  }

  attach(first.worker);
  return {
    inputs: first.ready.inputs,
    outputs: first.ready.outputs,
    providers: first.ready.providers,
    warnings: first.ready.warnings,
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
      const w = worker;
      if (!w) return;
      const closed = new Promise<void>((resolve) => (onClosed = resolve));
      w.postMessage({ type: 'close' } satisfies ToWorker);
      await closed;
      await w.terminate();
    },
  };
}
