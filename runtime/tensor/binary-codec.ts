// Triton's binary tensor extension: tensors carry `parameters.binary_data_size` instead of
// `data`, and their raw little-endian bytes follow the JSON header in tensor order.
// BYTES elements are each a 4-byte little-endian length followed by that many bytes.
import { PerchError } from '../base/errors.js';
import { arrayConstructor, type Datatype, elementSize, type TensorData } from './datatypes.js';
import { elementCount, type Tensor } from './tensor.js';

function lie(msg: string): PerchError {
  return new PerchError('PERCH_ERR_BINARY_SIZE', msg);
}

/** Decodes one tensor's bytes. `bytes` is exactly the tensor's binary_data_size bytes. */
export function decodeBinaryData(name: string, datatype: Datatype, shape: number[], bytes: Uint8Array): TensorData {
  return decodeBinaryAt(name, datatype, shape, bytes, 0, bytes.byteLength);
}

/**
 * decodeBinaryData of the `size` bytes at `at` in `bytes` (a frame's binary part): no view of
 * them is made unless they are copied (a subarray per input was a Buffer per tensor of every
 * stream chunk; docs/benchmarks.md, issue 20).
 */
export function decodeBinaryAt(name: string, datatype: Datatype, shape: number[], bytes: Uint8Array, at: number, size: number): TensorData {
  const count = elementCount(shape);
  const ctor = arrayConstructor(datatype);
  if (!ctor) return decodeBytesElements(name, count, at === 0 && size === bytes.byteLength ? bytes : bytes.subarray(at, at + size));
  const expected = count * elementSize(datatype);
  if (size !== expected) {
    throw lie(`tensor '${name}': shape ${JSON.stringify(shape)} of ${datatype} needs ${expected} bytes, binary_data_size is ${size}`);
  }
  // A view of the frame when its offset suits the element size: stacking a batch copies it
  // anyway, and the worker executor copies what it cannot transfer whole. A misaligned offset
  // (the usual case: the header length is arbitrary) needs an aligned copy.
  const from = bytes.byteOffset + at;
  if (from % elementSize(datatype) === 0) return new ctor(bytes.buffer, from, count);
  const source = new Uint8Array(bytes.buffer, from, size);
  if (expected > POOLED_MAX) {
    const own = new Uint8Array(expected);
    own.set(source);
    return new ctor(own.buffer, 0, count);
  }
  const offset = slabSpace(expected);
  slabBytes.set(source, offset);
  return new ctor(slab, offset, count);
}

// Small copies are carved from a shared slab, as Buffer's pool does: a fresh ArrayBuffer per
// tensor (three per VAD request) was a steady load on the garbage collector. A slab lives as
// long as any tensor cut from it; big tensors get a buffer of their own, which a worker
// executor can then transfer without copying. One byte view of the whole slab is kept beside
// it, so a copy makes no view of its own (docs/benchmarks.md, issue 20).
const SLAB_BYTES = 64 * 1024;
const POOLED_MAX = 4 * 1024;
let slab = new ArrayBuffer(SLAB_BYTES);
let slabBytes = new Uint8Array(slab);
let slabUsed = 0;

/** The offset in `slab` (after this call) of `bytes` free bytes, 8-byte aligned. */
function slabSpace(bytes: number): number {
  if (slabUsed + bytes > SLAB_BYTES) {
    slab = new ArrayBuffer(SLAB_BYTES);
    slabBytes = new Uint8Array(slab);
    slabUsed = 0;
  }
  const offset = slabUsed;
  slabUsed = (slabUsed + bytes + 7) & ~7; // the next tensor starts 8-byte aligned (INT64, FP64)
  return offset;
}

/** BYTES elements are arbitrary bytes (OIP): each is a view of the body, no copy, no UTF-8 check. */
function decodeBytesElements(name: string, count: number, bytes: Uint8Array): Uint8Array[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: Uint8Array[] = [];
  let at = 0;
  for (let i = 0; i < count; i++) {
    if (at + 4 > bytes.byteLength) throw lie(`tensor '${name}': BYTES element ${i} runs past binary_data_size`);
    const len = view.getUint32(at, true);
    at += 4;
    if (at + len > bytes.byteLength) throw lie(`tensor '${name}': BYTES element ${i} runs past binary_data_size`);
    out.push(bytes.subarray(at, at + len));
    at += len;
  }
  if (at !== bytes.byteLength) throw lie(`tensor '${name}': ${bytes.byteLength - at} bytes left after ${count} BYTES elements`);
  return out;
}

/** The raw bytes of a tensor, as they go on the wire. */
export function encodeBinaryData(t: Tensor): Uint8Array {
  const d = t.data;
  if (!Array.isArray(d)) return new Uint8Array(d.buffer, d.byteOffset, d.byteLength);
  const out = Buffer.allocUnsafe(d.reduce((n, p) => n + 4 + p.byteLength, 0));
  let at = 0;
  for (const p of d) {
    out.writeUInt32LE(p.byteLength, at);
    out.set(p, at + 4);
    at += 4 + p.byteLength;
  }
  return out;
}

/** Refuses a body whose length is not the sum of its tensors' binary_data_size values. */
export function checkBinaryTotal(total: number, body: Uint8Array): void {
  if (total !== body.byteLength) {
    throw lie(`binary_data_size values add up to ${total} bytes but ${body.byteLength} bytes follow the header`);
  }
}
