// Buffers the runtime keeps after a run: a sequence's state goes into every request of the
// sequence as it is, not as a copy. A one-request batch hands its inputs to the session thread
// unstacked, and moving (transferring) such a buffer there would detach the sequence's state,
// so the worker executor copies what is marked here instead of moving it.
import type { TensorData } from './datatypes.js';

const retained = new WeakSet<ArrayBufferLike>();

export function retain(data: TensorData): void {
  if (!Array.isArray(data)) retained.add(data.buffer);
}

export function isRetained(data: TensorData): boolean {
  return !Array.isArray(data) && retained.has(data.buffer);
}
