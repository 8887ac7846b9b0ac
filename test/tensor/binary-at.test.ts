// decodeBinaryAt reads a tensor at an offset of a frame's binary part without a view of it per
// input (docs/benchmarks.md, issue 20): it must give what decodeBinaryData gives on that
// subarray, aligned or not, for every kind of datatype, and refuse the same sizes the same way.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decodeBinaryAt, decodeBinaryData } from '../../runtime/tensor/binary-codec.js';
import { PerchError } from '../../runtime/base/errors.js';

/** `lead` bytes, then FP32 [1,3], INT64 [], BYTES [2] ("ab", ""), in a buffer whose own offset is `shift`. */
function frame(lead: number, shift: number): { bin: Uint8Array; parts: Array<[string, number[], number, number]> } {
  const f32 = new Float32Array([1.5, -2.25, 3e-8]);
  const i64 = new BigInt64Array([16000n]);
  const bytes = new Uint8Array([2, 0, 0, 0, 97, 98, 0, 0, 0, 0]);
  const size = lead + 12 + 8 + bytes.length;
  const under = new Uint8Array(shift + size);
  const bin = under.subarray(shift);
  bin.set(new Uint8Array(f32.buffer), lead);
  bin.set(new Uint8Array(i64.buffer), lead + 12);
  bin.set(bytes, lead + 20);
  return { bin, parts: [['FP32', [1, 3], lead, 12], ['INT64', [], lead + 12, 8], ['BYTES', [2], lead + 20, bytes.length]] };
}

test('decodeBinaryAt gives what decodeBinaryData gives on the subarray, at every alignment', () => {
  for (const lead of [0, 1, 3, 4, 8]) {
    for (const shift of [0, 1, 2, 5]) {
      const { bin, parts } = frame(lead, shift);
      for (const [datatype, shape, at, size] of parts) {
        const want = decodeBinaryData('t', datatype as never, shape, bin.subarray(at, at + size));
        const got = decodeBinaryAt('t', datatype as never, shape, bin, at, size);
        assert.deepEqual(got, want, `${datatype} at ${at} (lead ${lead}, shift ${shift})`);
      }
    }
  }
});

test('decodeBinaryAt refuses a size that does not fit the shape as decodeBinaryData does', () => {
  const { bin } = frame(3, 1);
  const code = (fn: () => unknown): string => {
    try {
      fn();
    } catch (err) {
      assert.ok(err instanceof PerchError);
      return `${err.code}: ${err.message}`;
    }
    return 'no error';
  };
  const want = code(() => decodeBinaryData('t', 'FP32', [1, 3], bin.subarray(3, 3 + 8)));
  assert.match(want, /^PERCH_ERR_BINARY_SIZE/);
  assert.equal(code(() => decodeBinaryAt('t', 'FP32', [1, 3], bin, 3, 8)), want);
});
