// The result cache key: SHA-256 over model, version and every input's name, datatype, shape and
// bytes. Inputs are taken in name order, so the order they arrived in does not change the key.
// Every variable-length part is length-prefixed, so no two different requests hash the same
// stream of bytes. The version is in the key: a new version never answers from the old one's entries.
import { createHash, type Hash } from 'node:crypto';
import type { Tensor } from '../tensor/tensor.js';

const DOMAIN = 'perch-result-cache-v1';

export function cacheKey(model: string, version: number, inputs: readonly Tensor[]): string {
  const h = createHash('sha256');
  const num = Buffer.allocUnsafe(8);
  const putNum = (n: number): void => {
    num.writeDoubleLE(n, 0);
    h.update(num);
  };
  const putStr = (s: string): void => {
    const b = Buffer.from(s, 'utf8');
    putNum(b.length);
    h.update(b);
  };
  putStr(DOMAIN);
  putStr(model);
  putNum(version);
  putNum(inputs.length);
  const sorted = [...inputs].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const t of sorted) {
    putStr(t.name);
    putStr(t.datatype);
    putNum(t.shape.length);
    for (const d of t.shape) putNum(d);
    hashData(h, t, putNum);
  }
  return h.digest('hex');
}

function hashData(h: Hash, t: Tensor, putNum: (n: number) => void): void {
  if (Array.isArray(t.data)) {
    putNum(t.data.length);
    // Each BYTES element as its length and its bytes (the same key as a UTF-8 string had).
    for (const e of t.data) {
      putNum(e.byteLength);
      h.update(e);
    }
    return;
  }
  // The raw little-endian bytes (every target Perch runs on is little-endian), no copy.
  putNum(t.data.byteLength);
  h.update(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
}
