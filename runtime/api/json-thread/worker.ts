// The JSON parse thread (parse-thread.ts; docs/reliability.md "Large JSON bodies"). One body at
// a time: parse, check, decode (large arrays of numbers straight from the bytes into the
// tensors, tensor/json-number-run.ts), send the tensors back (moved), then collect at once what
// the parse left, so this thread never holds more than one parse's garbage.
import { parentPort } from 'node:worker_threads';
import { PerchError } from '../../base/errors.js';
import { collected, fullCollection, isCollect, type CollectMessage } from '../../base/full-collection.js';
import { decodeLargeInferJson, ownedBuffers } from './decode-body.js';
import { tooDeep, type ParseReply, type ParseTask } from './messages.js';

const gc = fullCollection();

parentPort?.on('message', (m: ParseTask | CollectMessage) => {
  if (isCollect(m)) {
    gc?.();
    collected(m);
    return;
  }
  const task = m as ParseTask;
  let reply: ParseReply;
  let transfer: ArrayBuffer[] = [];
  try {
    const { body, decoded } = decodeLargeInferJson(new Uint8Array(task.json));
    reply = { id: task.id, ok: true, body, decoded };
    transfer = ownedBuffers(decoded);
  } catch (err) {
    reply = err instanceof PerchError
      ? { id: task.id, ok: false, code: err.code, message: err.message }
      : { id: task.id, ok: false, code: 'PERCH_ERR_INTERNAL', message: (err as Error).message };
  }
  try {
    parentPort?.postMessage(reply, transfer);
  } catch {
    // Valid JSON nested tens of thousands deep (in `parameters`) cannot be cloned to send back
    // (the serializer recurses): thrown here it ended the thread, and the body got a 500.
    parentPort?.postMessage(tooDeep(task.id));
  }
  gc?.();
});
