import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { concatAlongAxis, elementCount, splitAlongAxis, type Tensor } from '../../runtime/tensor/tensor.js';
import { fromHalfBits, toHalfBits } from '../../runtime/tensor/fp16.js';
import { decodeBinaryData, encodeBinaryData } from '../../runtime/tensor/binary-codec.js';
import { decodeJsonData, encodeJsonData, jsonBytesForm } from '../../runtime/tensor/json-codec.js';
import { PerchError } from '../../runtime/base/errors.js';
import { ownedFeeds, transferList } from '../../runtime/sessions/worker-protocol.js';
import { retain } from '../../runtime/tensor/retained.js';
import { numberedParts } from '../helpers/stack-parts.js';

/** Element at a multi-index, row-major. */
function at(t: Tensor, idx: number[]): unknown {
  let flat = 0;
  idx.forEach((v, i) => (flat = flat * (t.shape[i] as number) + v));
  return (t.data as Float32Array)[flat];
}

describe('tensor stacking', () => {
  test('concat then split along any axis gives the parts back, element by element', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 1, max: 3 }), { minLength: 1, maxLength: 4 }),
        fc.nat(),
        fc.array(fc.integer({ min: 1, max: 3 }), { minLength: 1, maxLength: 4 }),
        (shape, axisSeed, sizes) => {
          const axis = axisSeed % shape.length;
          const parts = numberedParts(shape, axis, sizes);
          const joined = concatAlongAxis(parts, axis);
          assert.equal(joined.shape[axis], sizes.reduce((a, b) => a + b, 0));
          // Element (.., offset + j, ..) of the joined tensor is element (.., j, ..) of its part.
          let offset = 0;
          for (const p of parts) {
            for (let flat = 0; flat < elementCount(p.shape); flat++) {
              const idx: number[] = [];
              let r = flat;
              for (let i = p.shape.length - 1; i >= 0; i--) {
                idx.unshift(r % (p.shape[i] as number));
                r = Math.floor(r / (p.shape[i] as number));
              }
              const jidx = idx.slice();
              jidx[axis] = (jidx[axis] as number) + offset;
              assert.equal(at(joined, jidx), at(p, idx));
            }
            offset += p.shape[axis] as number;
          }
          const back = splitAlongAxis(joined, axis, sizes);
          back.forEach((b, i) => {
            assert.deepEqual(b.shape, parts[i]!.shape);
            assert.deepEqual(Array.from(b.data as Float32Array), Array.from(parts[i]!.data as Float32Array));
          });
        },
      ),
      { numRuns: 200 },
    );
  });

  test('BYTES tensors stack too', () => {
    const b8 = (...xs: string[]): Uint8Array[] => xs.map((x) => Buffer.from(x));
    const text = (d: unknown): string[] => (d as Uint8Array[]).map((e) => Buffer.from(e).toString());
    const a: Tensor = { name: 's', datatype: 'BYTES', shape: [1, 2], data: b8('a', 'b') };
    const b: Tensor = { name: 's', datatype: 'BYTES', shape: [2, 2], data: b8('c', 'd', 'e', 'f') };
    const j = concatAlongAxis([a, b], 0);
    assert.deepEqual(text(j.data), ['a', 'b', 'c', 'd', 'e', 'f']);
    assert.deepEqual(splitAlongAxis(j, 0, [1, 2]).map((t) => text(t.data)), [['a', 'b'], ['c', 'd', 'e', 'f']]);
  });
});

describe('codecs', () => {
  test('FP16 round-trips every half value through a number', () => {
    for (let h = 0; h < 0x10000; h++) {
      const n = fromHalfBits(h);
      if (Number.isNaN(n)) continue;
      assert.equal(toHalfBits(n), h, `half 0x${h.toString(16)}`);
    }
    assert.equal(fromHalfBits(toHalfBits(1.5)), 1.5);
    assert.equal(fromHalfBits(toHalfBits(65520)), Infinity);
  });

  test('JSON data is checked against datatype, range and count', () => {
    assert.throws(() => decodeJsonData('x', 'FP32', [2], [1]), (e: PerchError) => e.code === 'PERCH_ERR_TENSOR_DATA');
    assert.throws(() => decodeJsonData('x', 'INT8', [1], [200]), (e: PerchError) => e.code === 'PERCH_ERR_TENSOR_DATA');
    assert.throws(() => decodeJsonData('x', 'INT32', [1], [1.5]), (e: PerchError) => e.code === 'PERCH_ERR_TENSOR_DATA');
    assert.throws(() => decodeJsonData('x', 'BOOL', [1], ['yes']), (e: PerchError) => e.code === 'PERCH_ERR_TENSOR_DATA');
    assert.deepEqual(Array.from(decodeJsonData('x', 'FP32', [2, 2], [[1, 2], [3, 4]]) as Float32Array), [1, 2, 3, 4]);
    assert.deepEqual(decodeJsonData('x', 'INT64', [2], ['9007199254740993', -1]), BigInt64Array.from([9007199254740993n, -1n]));
    assert.deepEqual(decodeJsonData('x', 'INT64', [2], [2 ** 53 - 1, -(2 ** 53 - 1)]), BigInt64Array.from([2n ** 53n - 1n, -(2n ** 53n - 1n)]));
  });

  test('an INT64 or UINT64 JSON number past 2^53 is refused, never rounded (send a decimal string)', () => {
    // JSON.parse gives 9007199254740993 as ...992: taken as it came, a wrong value with a 200.
    for (const text of ['9007199254740993', '9007199254740992', '-9007199254740993', '1e18', '18446744073709551615']) {
      for (const datatype of ['INT64', 'UINT64'] as const) {
        assert.throws(() => decodeJsonData('x', datatype, [1], JSON.parse(`[${text}]`)), (e: PerchError) => e.code === 'PERCH_ERR_TENSOR_DATA' && /decimal string/.test(e.message), `${datatype} ${text}`);
      }
    }
  });

  test('BYTES elements are arbitrary bytes: UTF-8 text or base64 in JSON, anything in binary', () => {
    const jpegStart = Buffer.from([0xff, 0xd8, 0xff, 0xe0, 0x00]);
    const [fromB64] = decodeJsonData('x', 'BYTES', [1], [jpegStart.toString('base64')], 'base64') as Uint8Array[];
    assert.deepEqual(Buffer.from(fromB64!), jpegStart);
    const [fromText] = decodeJsonData('x', 'BYTES', [1], ['héllo']) as Uint8Array[];
    assert.equal(Buffer.from(fromText!).toString('utf8'), 'héllo');
    for (const bad of ['abc', 'ab$=', '====', 'YW Jj']) {
      assert.throws(() => decodeJsonData('x', 'BYTES', [1], [bad], 'base64'), (e: PerchError) => e.code === 'PERCH_ERR_TENSOR_DATA', bad);
    }
    const mixed: Tensor = { name: 'b', datatype: 'BYTES', shape: [2], data: [Buffer.from('ok'), jpegStart] };
    assert.equal(jsonBytesForm(mixed.data as Uint8Array[]), 'base64');
    assert.deepEqual(encodeJsonData(mixed, 'base64'), ['b2s=', jpegStart.toString('base64')]);
    assert.equal(jsonBytesForm([Buffer.from('ok')]), 'str');
    const back = decodeBinaryData('b', 'BYTES', [2], encodeBinaryData(mixed)) as Uint8Array[];
    assert.deepEqual(back.map((e) => Buffer.from(e)), [Buffer.from('ok'), jpegStart]);
  });

  test('binary data round-trips for every datatype, and lying sizes are refused', () => {
    const cases: Tensor[] = [
      { name: 'a', datatype: 'FP32', shape: [3], data: Float32Array.from([1.5, -2, 3]) },
      { name: 'b', datatype: 'INT64', shape: [2], data: BigInt64Array.from([-5n, 2n ** 40n]) },
      { name: 'c', datatype: 'BOOL', shape: [2], data: Uint8Array.from([1, 0]) },
      { name: 'd', datatype: 'FP16', shape: [1], data: Uint16Array.from([0x3c00]) },
      { name: 'e', datatype: 'BYTES', shape: [3], data: [Buffer.from('héllo'), Buffer.alloc(0), Buffer.from([0xff, 0xd8, 0x00])] },
      { name: 'f', datatype: 'UINT64', shape: [1], data: BigUint64Array.from([2n ** 64n - 1n]) },
    ];
    for (const t of cases) {
      const bytes = encodeBinaryData(t);
      const back = decodeBinaryData(t.name, t.datatype, t.shape, bytes);
      assert.deepEqual(Array.isArray(back) ? back : Array.from(back as never), Array.isArray(t.data) ? t.data : Array.from(t.data as never));
      assert.deepEqual(encodeJsonData({ ...t, data: back }).length, t.shape[0]);
    }
    assert.throws(() => decodeBinaryData('a', 'FP32', [3], new Uint8Array(8)), (e: PerchError) => e.code === 'PERCH_ERR_BINARY_SIZE');
    const lying = Buffer.from([255, 0, 0, 0, 65]);
    assert.throws(() => decodeBinaryData('e', 'BYTES', [1], lying), (e: PerchError) => e.code === 'PERCH_ERR_BINARY_SIZE');
  });

  test('binary data at any offset of a frame: a view when aligned, a copy otherwise, equal either way', () => {
    const values = Float32Array.from([0.25, -1, 7.5, 3]);
    const bytes = new Uint8Array(values.buffer);
    for (let offset = 0; offset < 8; offset++) {
      const frame = new Uint8Array(64).fill(0xee);
      frame.set(bytes, offset);
      const part = frame.subarray(offset, offset + bytes.byteLength);
      const got = decodeBinaryData('x', 'FP32', [4], part) as Float32Array;
      assert.deepEqual(Array.from(got), Array.from(values), `offset ${offset}`);
      assert.equal(got.buffer === frame.buffer, offset % 4 === 0, `offset ${offset}: view only when aligned`);
      assert.equal(got.byteOffset % 4, 0);
    }
    // Copies never overlap: each keeps its values while more are decoded after it.
    const copies = Array.from({ length: 100 }, (_, i) => {
      const v = Float64Array.from([i, -i]);
      const frame = new Uint8Array(17);
      frame.set(new Uint8Array(v.buffer), 1);
      return decodeBinaryData('y', 'FP64', [2], frame.subarray(1)) as Float64Array;
    });
    copies.forEach((c, i) => assert.deepEqual(Array.from(c), [i, -i]));
    assert.ok(copies.every((c) => c.byteOffset % 8 === 0));
    // Past the end of one pooled slab into the next (1,000 floats = 4,000 bytes, pooled), and a
    // tensor too big to pool (1,500 floats), which gets a buffer of its own.
    const big = (n: number, i: number): Float32Array => {
      const v = Float32Array.from({ length: n }, (_, k) => i * 10000 + k);
      const frame = new Uint8Array(v.byteLength + 3);
      frame.set(new Uint8Array(v.buffer), 3);
      return decodeBinaryData('z', 'FP32', [n], frame.subarray(3)) as Float32Array;
    };
    const pooled = Array.from({ length: 40 }, (_, i) => big(1000, i));
    pooled.forEach((c, i) => assert.deepEqual(Array.from(c), Array.from({ length: 1000 }, (_, k) => i * 10000 + k), `pooled copy ${i}`));
    assert.ok(new Set(pooled.map((c) => c.buffer)).size > 1, 'the copies span more than one slab');
    const own = big(1500, 7);
    assert.deepEqual(Array.from(own), Array.from({ length: 1500 }, (_, k) => 70000 + k));
    assert.equal(own.byteOffset, 0);
    assert.equal(own.buffer.byteLength, 6000, 'a buffer of its own');
  });
});

describe('feeds posted to a session thread', () => {
  test('views get a buffer of their own; whole buffers are transferred as they are', () => {
    const frame = new Float32Array(16).map((_, i) => i);
    const view: Tensor = { name: 'v', datatype: 'FP32', shape: [4], data: frame.subarray(4, 8) };
    const whole: Tensor = { name: 'w', datatype: 'FP32', shape: [2], data: Float32Array.from([1, 2]) };
    const [v, w] = ownedFeeds([view, whole]) as [Tensor, Tensor];
    assert.deepEqual(Array.from(v.data as Float32Array), [4, 5, 6, 7]);
    assert.notEqual((v.data as Float32Array).buffer, frame.buffer);
    assert.equal(w, whole);
    assert.deepEqual(transferList([v, w]).length, 2);
    assert.deepEqual(transferList([view]), [], 'a view is never transferred: that would detach the frame');
  });

  test('a retained buffer (sequence state) is copied, never transferred', () => {
    const state = Float32Array.from([0.5, -0.5]);
    retain(state);
    const kept: Tensor = { name: 'state', datatype: 'FP32', shape: [2], data: state };
    assert.deepEqual(transferList([kept]), []);
    const [copy] = ownedFeeds([kept]) as [Tensor];
    assert.notEqual(copy.data, state);
    assert.deepEqual(Array.from(copy.data as Float32Array), [0.5, -0.5]);
    assert.equal(transferList([copy]).length, 1, 'the copy is the batch\'s own: it moves');
  });
});

describe('splitting a batch', () => {
  test('parts along axis 0 are views of the batch output; along a later axis, views of one gathered copy', () => {
    const t: Tensor = { name: 'o', datatype: 'FP32', shape: [3, 2], data: Float32Array.from([1, 2, 3, 4, 5, 6]) };
    const rows = splitAlongAxis(t, 0, [1, 2]);
    assert.deepEqual(rows.map((r) => Array.from(r.data as Float32Array)), [[1, 2], [3, 4, 5, 6]]);
    assert.ok(rows.every((r) => (r.data as Float32Array).buffer === (t.data as Float32Array).buffer));
    const cols = splitAlongAxis(t, 1, [1, 1]);
    assert.deepEqual(cols.map((c) => Array.from(c.data as Float32Array)), [[1, 3, 5], [2, 4, 6]]);
    assert.ok(cols.every((c) => (c.data as Float32Array).buffer !== (t.data as Float32Array).buffer));
    assert.equal((cols[0]!.data as Float32Array).buffer, (cols[1]!.data as Float32Array).buffer, 'one allocation per batch');
  });
});
