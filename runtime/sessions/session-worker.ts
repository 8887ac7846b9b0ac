// Entry of a session worker thread: owns one onnxruntime session and runs batches sent by the
// main thread, so a long batch never blocks the event loop that serves HTTP and WebSocket.
import { parentPort, workerData } from 'node:worker_threads';
import type { SessionConfig } from './session-config.js';
import { byteLength, type Tensor } from '../tensor/tensor.js';
import { fromOrtResults, openSession, toOrtFeeds } from './ort-session.js';
import { feedBuffers, transferList, type FromWorker, type ToWorker } from './worker-protocol.js';
import { collected, fullCollection } from '../base/full-collection.js';
import { RENEW_AFTER_INPUT_BYTES, zeroFeeds } from './session-renewal.js';

const { path, config } = workerData as { path: string; config: SessionConfig };
const port = parentPort!;
const collect = fullCollection();

function post(msg: FromWorker, transfer: ArrayBuffer[] = []): void {
  try {
    port.postMessage(msg, transfer);
  } catch {
    // Some output buffers are not detachable; a copy is still correct.
    port.postMessage(msg);
  }
}

try {
  const opened = await openSession(path, config);
  let session = opened.session;
  let runs = 0;
  let largestInput = 0;
  let renewing: Promise<void> | null = null;
  // The device went idle after a burst: give back the arena a large batch grew (session-renewal.ts).
  // Only while nothing runs, one session at a time: runs that arrive meanwhile wait for it
  // (releasing a session from a run's settling, with a new one open beside it, hung the thread).
  const renew = async (): Promise<void> => {
    const started = performance.now();
    try {
      const fresh = (await openSession(path, config)).session;
      const zeros = zeroFeeds(opened.inputs);
      if (zeros) await fresh.run(zeros).catch(() => undefined);
      const old = session;
      session = fresh;
      largestInput = 0;
      await old.release().catch(() => undefined);
      post({ type: 'renewed', ms: performance.now() - started });
    } catch {
      // The old session goes on serving: nothing is lost but the memory.
    }
  };
  const run = (msg: Extract<ToWorker, { type: 'run' }>): void => {
    const started = performance.now();
    let feeds: ReturnType<typeof toOrtFeeds>;
    try {
      feeds = toOrtFeeds(msg.feeds);
    } catch (err) {
      // An ort.Tensor that cannot be made (data that does not fit its shape) fails this batch,
      // not the thread.
      post({ type: 'failed', id: msg.id, message: (err as Error).message });
      return;
    }
    let bytes = 0;
    for (const t of msg.feeds) bytes += byteLength(t);
    largestInput = Math.max(largestInput, bytes);
    runs++;
    session.run(feeds)
      .then((results) => {
        const runMs = performance.now() - started;
        const outputs: Tensor[] = fromOrtResults(results);
        // The run is over (onnxruntime-node's run() is synchronous native code: nothing of it
        // reads the feeds now): their buffers go back for the next batches (buffer-pool.ts).
        const inputs = feedBuffers(msg.feeds);
        post({ type: 'result', id: msg.id, outputs, runMs, inputs }, [...transferList(outputs), ...inputs]);
      })
      .catch((err: Error) => post({ type: 'failed', id: msg.id, message: err.message }))
      .finally(() => runs--);
  };
  port.on('message', (msg: ToWorker) => {
    if (msg.type === 'collect') {
      // After a burst (runtime/base/full-collection.ts): the inputs this thread received.
      collect?.();
      if (largestInput >= RENEW_AFTER_INPUT_BYTES && runs === 0 && !renewing) {
        renewing = renew().finally(() => (renewing = null));
      }
      // Done once the old session is released too (its onnxruntime memory is what a trim returns).
      if (renewing) void renewing.then(() => collected(msg), () => collected(msg));
      else collected(msg);
      return;
    }
    if (msg.type === 'close') {
      void (renewing ?? Promise.resolve()).then(() => session.release()).finally(() => {
        post({ type: 'closed' });
        port.close();
      });
      return;
    }
    if (renewing) void renewing.then(() => run(msg));
    else run(msg);
  });
  post({ type: 'ready', inputs: opened.inputs, outputs: opened.outputs, providers: opened.providers, warnings: opened.warnings });
} catch (err) {
  post({ type: 'error', message: (err as Error).message });
}
