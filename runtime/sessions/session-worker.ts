// Entry of a session worker thread: owns one onnxruntime session and runs batches sent by the
// main thread, so a long batch never blocks the event loop that serves HTTP and WebSocket.
import { parentPort, workerData } from 'node:worker_threads';
import type { SessionConfig } from './session-config.js';
import type { Tensor } from '../tensor/tensor.js';
import { fromOrtResults, openSession, toOrtFeeds } from './ort-session.js';
import { transferList, type FromWorker, type ToWorker } from './worker-protocol.js';
import { fullCollection } from '../base/full-collection.js';

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
  const { session } = opened;
  port.on('message', (msg: ToWorker) => {
    if (msg.type === 'collect') {
      // After a burst (runtime/base/full-collection.ts): the inputs this thread received.
      collect?.();
      return;
    }
    if (msg.type === 'close') {
      void session.release().finally(() => {
        post({ type: 'closed' });
        port.close();
      });
      return;
    }
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
    session.run(feeds)
      .then((results) => {
        const runMs = performance.now() - started;
        const outputs: Tensor[] = fromOrtResults(results);
        post({ type: 'result', id: msg.id, outputs, runMs }, transferList(outputs));
      })
      .catch((err: Error) => post({ type: 'failed', id: msg.id, message: err.message }));
  });
  post({ type: 'ready', inputs: opened.inputs, outputs: opened.outputs, providers: opened.providers, warnings: opened.warnings });
} catch (err) {
  post({ type: 'error', message: (err as Error).message });
}
