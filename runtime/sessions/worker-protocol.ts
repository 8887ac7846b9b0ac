// Messages between the main thread and a session worker.
import type { OrtTensorMetadata } from './executor.js';
import type { NumericArray } from '../tensor/datatypes.js';
import type { Tensor } from '../tensor/tensor.js';
import { isRetained } from '../tensor/retained.js';
import { isPooled, isPoolSize } from '../tensor/buffer-pool.js';
import type { CollectMessage } from '../base/full-collection.js';

export type ToWorker = { type: 'run'; id: number; feeds: Tensor[] } | { type: 'close' } | CollectMessage;

export type FromWorker =
  | { type: 'ready'; inputs: OrtTensorMetadata[]; outputs: OrtTensorMetadata[]; providers: string[]; warnings: string[] }
  | { type: 'error'; message: string }
  /** `inputs`: the feeds' buffers, moved back for the model instance's pool (buffer-pool.ts). */
  | { type: 'result'; id: number; outputs: Tensor[]; runMs: number; inputs: ArrayBuffer[] }
  | { type: 'failed'; id: number; message: string }
  | { type: 'closed' }
  /** The session was opened again to give back its arena (session-renewal.ts). */
  | { type: 'renewed'; ms: number };

/**
 * True when the array spans its whole (non-shared) buffer, or a pool's buffer taken for it alone
 * (tensor/buffer-pool.ts), and the runtime does not keep that buffer after the run: moving it
 * moves nothing else anyone still uses.
 */
function ownsWholeBuffer(d: NumericArray): boolean {
  return d.buffer instanceof ArrayBuffer && !isRetained(d) && ((d.byteOffset === 0 && d.byteLength === d.buffer.byteLength) || isPooled(d.buffer));
}

/**
 * On the session thread, after a run: the feeds' buffers the main thread's pool would keep (of a
 * pool size), each once. Every one is this thread's alone (moved here, or a copy made by
 * postMessage) and the finished run no longer reads it, so it can go back.
 */
export function feedBuffers(tensors: readonly Tensor[]): ArrayBuffer[] {
  const seen = new Set<ArrayBuffer>();
  for (const t of tensors) {
    const d = t.data;
    if (!Array.isArray(d) && d.buffer instanceof ArrayBuffer && isPoolSize(d.buffer.byteLength)) seen.add(d.buffer);
  }
  return [...seen];
}

/**
 * Buffers to move (not copy) across threads: only those a tensor owns whole, so transferring
 * never detaches memory something else still uses. Never an empty one: moving it gains nothing,
 * and a buffer an earlier post already moved (detached, 0 bytes) in the transfer list makes
 * Node's postMessage drop the whole message without an error, so its run would wait forever;
 * cloned instead, a detached buffer throws (DataCloneError), which the caller can report.
 */
export function transferList(tensors: readonly Tensor[]): ArrayBuffer[] {
  const seen = new Set<ArrayBuffer>();
  for (const t of tensors) {
    const d = t.data;
    if (!Array.isArray(d) && d.byteLength > 0 && ownsWholeBuffer(d)) seen.add(d.buffer as ArrayBuffer);
  }
  return [...seen];
}

/**
 * The first tensor whose buffer was moved to another thread by an earlier post (detached: it
 * reads as 0 bytes). Node 20 has no ArrayBuffer.prototype.detached; only an empty buffer is
 * probed (a detached one cannot be cloned), so a tensor with data costs one comparison.
 */
export function detachedFeed(tensors: readonly Tensor[]): Tensor | undefined {
  return tensors.find((t) => {
    const d = t.data;
    if (Array.isArray(d) || d.byteLength > 0 || !(d.buffer instanceof ArrayBuffer)) return false;
    try {
      structuredClone(d.buffer);
      return false;
    } catch {
      return true;
    }
  });
}

/**
 * Feeds ready to post: a tensor that views part of a bigger buffer (a slice of a socket read,
 * an unstacked request) or whose buffer the runtime keeps (sequence state) gets a copy of its
 * own, since posting the view would clone the whole buffer under it and transferring it would
 * detach memory others still use.
 */
export function ownedFeeds(tensors: readonly Tensor[]): Tensor[] {
  return tensors.map((t) => {
    const d = t.data;
    if (Array.isArray(d) || ownsWholeBuffer(d)) return t;
    return { name: t.name, datatype: t.datatype, shape: t.shape, data: d.slice() };
  });
}
