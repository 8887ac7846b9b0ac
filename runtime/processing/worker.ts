// Entry of a processing thread (runtime/processing/pool.ts): runs steps that decode, resize and
// post-process, so that pixel loops never hold the event loop that serves requests.
import { parentPort } from 'node:worker_threads';
import { toPerchError } from '../base/errors.js';
import { collected, fullCollection, isCollect, type CollectMessage } from '../base/full-collection.js';
import type { Tensor } from '../tensor/tensor.js';
import type { ProcessingTask, ProcessingReply } from './pool.js';
import { runStep } from './run-step.js';

const port = parentPort!;
const collect = fullCollection();

/** Buffers the answer owns whole are moved, not copied (a decoded photo is megabytes). */
function transferable(tensors: readonly Tensor[]): ArrayBuffer[] {
  const seen = new Set<ArrayBuffer>();
  for (const t of tensors) {
    const parts = Array.isArray(t.data) ? t.data : [t.data];
    for (const d of parts) if (d.byteOffset === 0 && d.byteLength === d.buffer.byteLength && d.buffer instanceof ArrayBuffer) seen.add(d.buffer);
  }
  return [...seen];
}

port.on('message', (task: ProcessingTask | CollectMessage) => {
  if (isCollect(task)) {
    // After a burst (runtime/base/full-collection.ts): decoded images this thread still holds.
    collect?.();
    collected(task);
    return;
  }
  void runStep(task.step, task.inputs, task.dir).then(
    (outputs) => {
      const reply: ProcessingReply = { id: task.id, ok: true, outputs };
      try {
        port.postMessage(reply, transferable(outputs));
      } catch {
        port.postMessage(reply);
      }
    },
    (err: unknown) => {
      const e = toPerchError(err);
      port.postMessage({ id: task.id, ok: false, code: e.code, message: e.message } satisfies ProcessingReply);
    },
  );
});
