// Runs the session on its own worker thread: the event loop stays free while a batch runs
// (onnxruntime-node's run() blocks the thread that calls it). Input buffers are transferred,
// not copied; outputs come back the same way.
import { Worker } from 'node:worker_threads';
import { PerchError } from '../errors.js';
import type { SessionConfig } from '../models/model-config.js';
import type { Tensor } from '../tensor/tensor.js';
import type { Executor, ExecutorResult } from './executor.js';
import { ownedFeeds, transferList, type FromWorker, type ToWorker } from './worker-protocol.js';

const WORKER_URL = new URL('./session-worker.js', import.meta.url);

export async function createWorkerExecutor(path: string, cfg: SessionConfig): Promise<Executor> {
  const worker = new Worker(WORKER_URL, { workerData: { path, config: cfg } });
  const pending = new Map<number, { resolve: (r: ExecutorResult) => void; reject: (e: Error) => void }>();
  let nextId = 1;
  let dead: PerchError | null = null;
  let onClosed: (() => void) | null = null;

  // Listeners for the loading phase only. (Never worker.removeAllListeners(): Worker forwards its
  // port's messages through its own 'newListener' hooks, which that would remove too.)
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- EventEmitter listener type
  const loading: Array<[string, (...args: any[]) => void]> = [];
  const ready = await new Promise<Extract<FromWorker, { type: 'ready' }>>((resolve, reject) => {
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

  function fail(err: PerchError): void {
    dead = err;
    for (const p of pending.values()) p.reject(err);
    pending.clear();
  }

  worker.on('message', (msg: FromWorker) => {
    if (msg.type === 'result' || msg.type === 'failed') {
      const p = pending.get(msg.id);
      if (!p) return;
      pending.delete(msg.id);
      if (msg.type === 'result') p.resolve({ outputs: msg.outputs, runMs: msg.runMs });
      else p.reject(new PerchError('PERCH_ERR_INFERENCE_FAILED', msg.message));
    } else if (msg.type === 'closed') {
      onClosed?.();
    }
  });
  worker.on('error', (err) => fail(new PerchError('PERCH_ERR_INFERENCE_FAILED', `session worker crashed: ${err.message}`, { cause: err })));
  worker.on('exit', (code) => {
    onClosed?.();
    if (!dead) fail(new PerchError('PERCH_ERR_INFERENCE_FAILED', `session worker exited (code ${code})`));
  });

  return {
    inputs: ready.inputs,
    outputs: ready.outputs,
    providers: ready.providers,
    warnings: ready.warnings,
    run(feeds: Tensor[]): Promise<ExecutorResult> {
      if (dead) return Promise.reject(dead);
      const id = nextId++;
      return new Promise((resolve, reject) => {
        pending.set(id, { resolve, reject });
        const owned = ownedFeeds(feeds);
        const msg: ToWorker = { type: 'run', id, feeds: owned };
        worker.postMessage(msg, transferList(owned));
      });
    },
    async close(): Promise<void> {
      if (dead) return;
      dead = new PerchError('PERCH_ERR_MODEL_NOT_READY', 'session closed');
      const closed = new Promise<void>((resolve) => (onClosed = resolve));
      worker.postMessage({ type: 'close' } satisfies ToWorker);
      await closed;
      await worker.terminate();
    },
  };
}
