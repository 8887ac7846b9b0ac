// Worker-thread entry for the VAD load generator: keeps the benchmark's main thread (metrics
// scraping, bookkeeping) off the thread that drives the sockets.
import { parentPort, Worker, workerData } from 'node:worker_threads';
import { runVadLoad, type VadLoadOptions, type VadLoadResult } from './vad-load.js';

type FromLoadWorker = { type: 'window' } | { type: 'done'; result: VadLoadResult } | { type: 'error'; message: string };

/** Runs the load on a worker thread; `onWindowStart` fires when the measured window opens. */
export function runVadLoadInWorker(o: VadLoadOptions, onWindowStart?: () => void): Promise<VadLoadResult> {
  const worker = new Worker(new URL(import.meta.url), { workerData: o });
  return new Promise((resolve, reject) => {
    worker.on('message', (m: FromLoadWorker) => {
      if (m.type === 'window') onWindowStart?.();
      else if (m.type === 'done') resolve(m.result);
      else reject(new Error(m.message));
    });
    worker.on('error', reject);
  }).finally(() => worker.terminate()) as Promise<VadLoadResult>;
}

if (parentPort && workerData) {
  const port = parentPort;
  runVadLoad(workerData as VadLoadOptions, () => port.postMessage({ type: 'window' } satisfies FromLoadWorker)).then(
    (result) => port.postMessage({ type: 'done', result } satisfies FromLoadWorker),
    (err: Error) => port.postMessage({ type: 'error', message: err.message } satisfies FromLoadWorker),
  );
}
