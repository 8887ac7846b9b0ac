import type { Datatype, TensorData } from './datatypes.js';
import { allocate } from './datatypes.js';
import { PerchError } from '../base/errors.js';

/** A tensor as Perch holds it between the codecs, the scheduler and onnxruntime. */
export interface Tensor {
  name: string;
  datatype: Datatype;
  shape: number[];
  data: TensorData;
}

export function elementCount(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** Bytes the tensor's data takes (BYTES: the length of every element plus its 4-byte prefix). */
export function byteLength(t: Tensor): number {
  if (Array.isArray(t.data)) {
    let n = 0;
    for (const s of t.data) n += 4 + s.byteLength;
    return n;
  }
  return t.data.byteLength;
}

/**
 * Concatenates the data of several tensors along `axis`. Every part has the same shape except
 * at `axis`. Row-major: each part contributes `outer` runs of `size(axis) * inner` elements.
 */
export function concatAlongAxis(parts: readonly Tensor[], axis: number): Tensor {
  const first = parts[0];
  if (!first) throw new PerchError('PERCH_ERR_INTERNAL', 'concatAlongAxis: no parts');
  if (parts.length === 1) return first;
  const outer = elementCount(first.shape.slice(0, axis));
  const inner = elementCount(first.shape.slice(axis + 1));
  let total = 0;
  for (const p of parts) total += p.shape[axis] ?? 0;
  const shape = first.shape.slice();
  shape[axis] = total;
  const out = allocate(first.datatype, outer * total * inner);
  let offset = 0;
  for (let o = 0; o < outer; o++) {
    for (const p of parts) {
      const run = (p.shape[axis] ?? 0) * inner;
      const start = o * run;
      copyRange(p.data, start, start + run, out, offset);
      offset += run;
    }
  }
  return { name: first.name, datatype: first.datatype, shape, data: out };
}

/**
 * Splits a tensor along `axis` into parts of the given sizes (the inverse of concatAlongAxis).
 * When each part is one contiguous run (axis 0, or only 1s before it) the parts are views of
 * `t`'s buffer, not copies: a batch's answers are encoded straight from the session's output.
 * Otherwise the parts are gathered into one new buffer, part after part, and each part views
 * its own range of it: one allocation per batch, not one per request.
 */
export function splitAlongAxis(t: Tensor, axis: number, sizes: readonly number[]): Tensor[] {
  if (sizes.length === 1) return [t];
  const outer = elementCount(t.shape.slice(0, axis));
  const inner = elementCount(t.shape.slice(axis + 1));
  const total = t.shape[axis] ?? 0;
  const gathered = outer === 1 ? null : allocate(t.datatype, outer * total * inner);
  const parts: Tensor[] = [];
  let before = 0;
  for (const size of sizes) {
    const shape = t.shape.slice();
    shape[axis] = size;
    const from = before * inner;
    let data: TensorData;
    if (gathered === null) {
      const end = (before + size) * inner;
      data = Array.isArray(t.data) ? t.data.slice(from, end) : t.data.subarray(from, end);
    } else {
      const at = outer * from; // the parts before this one take outer * before * inner elements
      for (let o = 0; o < outer; o++) {
        const start = (o * total + before) * inner;
        copyRange(t.data, start, start + size * inner, gathered, at + o * size * inner);
      }
      data = Array.isArray(gathered) ? gathered.slice(at, at + outer * size * inner) : gathered.subarray(at, at + outer * size * inner);
    }
    parts.push({ name: t.name, datatype: t.datatype, shape, data });
    before += size;
  }
  return parts;
}

function copyRange(src: TensorData, start: number, end: number, dst: TensorData, at: number): void {
  if (Array.isArray(src)) {
    const d = dst as Uint8Array[];
    for (let i = start; i < end; i++) d[at + i - start] = src[i] as Uint8Array;
    return;
  }
  // Same typed array kind on both sides: set() copies with memmove. A whole array (a stream
  // chunk's input when stacked) is copied as it is, without a view made per copy.
  if (start === 0 && end === src.length) (dst as typeof src).set(src as never, at);
  else (dst as typeof src).set(src.subarray(start, end) as never, at);
}
