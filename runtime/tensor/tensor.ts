import type { Datatype, NumericArray, TensorData } from './datatypes.js';
import { allocate } from './datatypes.js';
import { PerchError } from '../base/errors.js';
import type { BufferPool } from './buffer-pool.js';

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
 * With a pool, the result's buffer is taken from it (buffer-pool.ts): every element is written,
 * so a used buffer holds nothing of its last batch.
 */
export function concatAlongAxis(parts: readonly Tensor[], axis: number, pool?: BufferPool): Tensor {
  const first = parts[0];
  if (!first) throw new PerchError('PERCH_ERR_INTERNAL', 'concatAlongAxis: no parts');
  if (parts.length === 1) return first;
  const outer = elementCount(first.shape.slice(0, axis));
  const inner = elementCount(first.shape.slice(axis + 1));
  let total = 0;
  for (const p of parts) total += p.shape[axis] ?? 0;
  const shape = first.shape.slice();
  shape[axis] = total;
  const out = pool ? pool.array(first.datatype, outer * total * inner) : allocate(first.datatype, outer * total * inner);
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
 * Otherwise the parts are gathered part after part, and each part views its own range: into one
 * new buffer (one allocation per batch, not one per request), or, with `inPlace`, within `t`'s
 * own buffer, its elements moved (regroup): only for a tensor nobody else holds or reads (a
 * session's output just handed over: sessions/executor.ts `owned`), which then reads as the parts
 * one after another, not as `t`. A batch's state output of 16 KiB or more was an mmap and a
 * munmap per batch under npm start's malloc tunables (docs/benchmarks.md).
 */
export function splitAlongAxis(t: Tensor, axis: number, sizes: readonly number[], inPlace = false): Tensor[] {
  if (sizes.length === 1) return [t];
  const outer = elementCount(t.shape.slice(0, axis));
  const inner = elementCount(t.shape.slice(axis + 1));
  const total = t.shape[axis] ?? 0;
  let gathered: TensorData | null = null;
  if (outer !== 1 && inPlace && !Array.isArray(t.data)) {
    regroup(t.data, outer, total, inner, sizes);
    gathered = t.data;
  } else if (outer !== 1) {
    gathered = allocate(t.datatype, outer * total * inner);
    let before = 0;
    for (const size of sizes) {
      const at = outer * before * inner; // the parts before this one take outer * before * inner elements
      for (let o = 0; o < outer; o++) {
        const start = (o * total + before) * inner;
        copyRange(t.data, start, start + size * inner, gathered, at + o * size * inner);
      }
      before += size;
    }
  }
  const parts: Tensor[] = [];
  let before = 0;
  for (const size of sizes) {
    const shape = t.shape.slice();
    shape[axis] = size;
    const from = gathered === null ? before * inner : outer * before * inner;
    const end = from + (gathered === null ? size * inner : outer * size * inner);
    const src = gathered ?? t.data;
    const data = Array.isArray(src) ? src.slice(from, end) : src.subarray(from, end);
    parts.push({ name: t.name, datatype: t.datatype, shape, data });
    before += size;
  }
  return parts;
}

/**
 * Reorders `data` ([outer][total][inner], row-major) in place into the parts of `sizes` one after
 * another, each [outer][size][inner]: what splitAlongAxis gathers into a new buffer. Blocks of
 * `inner` elements move along the cycles of the permutation; one block is held aside per cycle.
 */
function regroup(data: NumericArray, outer: number, total: number, inner: number, sizes: readonly number[]): void {
  const blocks = outer * total;
  // sourceOf[j]: the block that goes to block j.
  const sourceOf = new Int32Array(blocks);
  let j = 0;
  let before = 0;
  for (const size of sizes) {
    for (let o = 0; o < outer; o++) {
      for (let k = 0; k < size; k++) sourceOf[j++] = o * total + before + k;
    }
    before += size;
  }
  const done = new Uint8Array(blocks);
  let aside: NumericArray | null = null;
  for (let start = 0; start < blocks; start++) {
    if (done[start] === 1 || sourceOf[start] === start) continue;
    aside ??= data.slice(0, inner);
    (aside as Float32Array).set((data as Float32Array).subarray(start * inner, start * inner + inner));
    let to = start;
    for (;;) {
      done[to] = 1;
      const from = sourceOf[to] as number;
      if (from === start) {
        (data as Float32Array).set(aside as Float32Array, to * inner);
        break;
      }
      data.copyWithin(to * inner, from * inner, from * inner + inner);
      to = from;
    }
  }
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
