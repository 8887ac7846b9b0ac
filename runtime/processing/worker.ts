// Entry of a processing thread (runtime/processing/pool.ts): runs steps that decode, resize and
// post-process, so that pixel loops never hold the event loop that serves requests.
import { parentPort } from 'node:worker_threads';
import { toPerchError } from '../base/errors.js';
import { collected, fullCollection, isCollect, type CollectMessage } from '../base/full-collection.js';
import type { Tensor } from '../tensor/tensor.js';
import type { ProcessingTask, ProcessingReply } from './pool.js';
import { probeStep, runStep } from './run-step.js';

const port = parentPort!;
const collect = fullCollection();

/** A decoded picture this large (4 M pixels) is collected after (see below). */
const BIG_PICTURE_BYTES = 12_000_000;

function bytesOf(tensors: readonly Tensor[]): number {
  let n = 0;
  for (const t of tensors) if (!Array.isArray(t.data)) n += t.data.byteLength;
  return n;
}

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
  void (task.probe ? probeStep(task.step, task.inputs) : runStep(task.step, task.inputs, task.dir)).then(
    (outputs) => {
      const reply: ProcessingReply = { id: task.id, ok: true, outputs };
      try {
        port.postMessage(reply, transferable(outputs));
      } catch {
        port.postMessage(reply);
      }
      // sharp's own buffer of a big decoded picture (copied into shared memory, image.ts) is
      // garbage now, but this thread's small heap would not be collected for many pictures.
      if (!task.probe && task.step.op === 'image.decode' && bytesOf(outputs) >= BIG_PICTURE_BYTES) collect?.();
    },
    (err: unknown) => {
      const e = toPerchError(err);
      port.postMessage({ id: task.id, ok: false, code: e.code, message: e.message } satisfies ProcessingReply);
    },
  );
});
