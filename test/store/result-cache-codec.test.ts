// The cache key and the outputs codec: pure functions, tested directly and by properties.
import fc from 'fast-check';
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { CodecError, decodeTensors, encodeTensors } from '../../runtime/store/result-cache-codec.js';
import { cacheKey } from '../../runtime/store/result-cache-key.js';
import { arrayConstructor, DATATYPES, elementSize, type Datatype } from '../../runtime/tensor/datatypes.js';
import type { Tensor } from '../../runtime/tensor/tensor.js';
import { everyDatatype, sameTensor } from './helpers/sample-tensors.js';

void describe('result cache codec', () => {
  void test('every datatype round-trips bit for bit (INT64 bigints, FP16 bits, NaN payloads, BYTES strings, scalars, empty)', () => {
    const tensors = everyDatatype();
    const decoded = decodeTensors(encodeTensors(tensors));
    assert.equal(decoded.length, tensors.length);
    decoded.forEach((t, i) => assert.ok(sameTensor(t, tensors[i] as Tensor), `${t.name} differs`));
    assert.equal((decoded.find((t) => t.name === 'i64')?.data as BigInt64Array)[0], -9223372036854775808n);
  });

  void test('views into a larger buffer encode only their own bytes', () => {
    const big = new Float32Array([9, 1, 2, 9]);
    const t: Tensor = { name: 'v', datatype: 'FP32', shape: [2], data: big.subarray(1, 3) };
    const [d] = decodeTensors(encodeTensors([t]));
    assert.deepEqual(Array.from(d?.data as Float32Array), [1, 2]);
  });

  void test('decodes from an unaligned copy of the bytes', () => {
    const enc = encodeTensors(everyDatatype());
    const shifted = Buffer.alloc(enc.length + 1);
    enc.copy(shifted, 1);
    const decoded = decodeTensors(shifted.subarray(1));
    decoded.forEach((t, i) => assert.ok(sameTensor(t, everyDatatype()[i] as Tensor)));
  });

  void test('damaged input throws CodecError, never returns wrong tensors', () => {
    const enc = encodeTensors(everyDatatype());
    assert.throws(() => decodeTensors(enc.subarray(0, enc.length - 1)), CodecError);
    assert.throws(() => decodeTensors(Buffer.concat([enc, Buffer.from([0])])), CodecError);
    assert.throws(() => decodeTensors(Buffer.from('garbage!!!')), CodecError);
    const wrongFormat = Buffer.from(enc);
    wrongFormat[3] = 99;
    assert.throws(() => decodeTensors(wrongFormat), CodecError);
  });

  void test('property: any list of tensors round-trips', () => {
    const tensorArb = fc
      .record({
        name: fc.string({ maxLength: 12 }),
        datatype: fc.constantFrom(...DATATYPES),
        dims: fc.array(fc.integer({ min: 0, max: 4 }), { maxLength: 3 }),
      })
      .chain(({ name, datatype, dims }) => {
        const n = dims.reduce((a, b) => a * b, 1);
        if (datatype === 'BYTES') {
          return fc.array(fc.uint8Array({ maxLength: 8 }), { minLength: n, maxLength: n }).map((data): Tensor => ({ name, datatype, shape: dims, data }));
        }
        const bytes = n * elementSize(datatype);
        return fc.uint8Array({ minLength: bytes, maxLength: bytes }).map((raw): Tensor => {
          const ctor = arrayConstructor(datatype as Exclude<Datatype, 'BYTES'>);
          const data = new (ctor as NonNullable<typeof ctor>)(n);
          new Uint8Array(data.buffer).set(raw);
          return { name, datatype, shape: dims, data };
        });
      });
    fc.assert(
      fc.property(fc.array(tensorArb, { maxLength: 5 }), (tensors) => {
        const decoded = decodeTensors(encodeTensors(tensors));
        return decoded.length === tensors.length && decoded.every((t, i) => sameTensor(t, tensors[i] as Tensor));
      }),
      { numRuns: 300 },
    );
  });
});

void describe('cache key', () => {
  const a: Tensor = { name: 'a', datatype: 'FP32', shape: [1, 2], data: new Float32Array([1, 2]) };
  const b: Tensor = { name: 'b', datatype: 'INT64', shape: [1], data: new BigInt64Array([7n]) };

  void test('is a SHA-256 hex digest, independent of the order inputs arrive in', () => {
    const k = cacheKey('m', 1, [a, b]);
    assert.match(k, /^[0-9a-f]{64}$/);
    assert.equal(cacheKey('m', 1, [b, a]), k);
  });

  void test('changes with the model, the version and each input name, datatype, shape and byte', () => {
    const k = cacheKey('m', 1, [a, b]);
    const variants = [
      cacheKey('n', 1, [a, b]),
      cacheKey('m', 2, [a, b]),
      cacheKey('m', 1, [{ ...a, name: 'c' }, b]),
      cacheKey('m', 1, [{ ...a, datatype: 'INT32', data: new Int32Array(new Float32Array([1, 2]).buffer) }, b]),
      cacheKey('m', 1, [{ ...a, shape: [2, 1] }, b]),
      cacheKey('m', 1, [{ ...a, data: new Float32Array([1, 2.0000002]) }, b]),
      cacheKey('m', 1, [a]),
    ];
    for (const v of variants) assert.notEqual(v, k);
    assert.equal(new Set(variants).size, variants.length);
  });

  void test('length prefixes keep neighbouring fields apart', () => {
    const s = (name: string, data: string[]): Tensor => ({ name, datatype: 'BYTES', shape: [data.length], data: data.map((x) => Buffer.from(x)) });
    assert.notEqual(cacheKey('ab', 1, [s('c', ['x'])]), cacheKey('a', 1, [s('bc', ['x'])]));
    assert.notEqual(cacheKey('m', 1, [s('t', ['ab', 'c'])]), cacheKey('m', 1, [s('t', ['a', 'bc'])]));
  });

  void test('hashes the viewed bytes only, so a subarray keys like a copy', () => {
    const big = new Float32Array([5, 1, 2, 5]);
    assert.equal(cacheKey('m', 1, [{ ...a, data: big.subarray(1, 3) }]), cacheKey('m', 1, [a]));
  });
});
