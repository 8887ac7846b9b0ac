// encodeResultJson (runtime/api/encode-response.ts) reuses the header text it made for a model's
// last answer: it must always read exactly as JSON.stringify of encodeResult's header, whatever
// changed between two answers (shape, byte size, version, cached, names, datatypes, id, JSON outputs).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { encodeResult, encodeResultJson } from '../../runtime/api/encode-response.js';
import type { InferResult } from '../../runtime/inference/infer-service.js';
import type { Tensor } from '../../runtime/tensor/tensor.js';

function result(over: Partial<InferResult> & { outputs?: Tensor[] } = {}): InferResult {
  return {
    model_name: 'vad',
    model_version: '1',
    parameters: { cached: false },
    outputs: [{ name: 'output', datatype: 'FP32', shape: [1, 1], data: Float32Array.of(0.25) }],
    binary: [undefined],
    ...over,
  };
}

const two = (): Tensor[] => [
  { name: 'output', datatype: 'FP32', shape: [2, 1], data: Float32Array.of(0.25, 0.5) },
  { name: 'stateN', datatype: 'FP32', shape: [2, 1, 2], data: Float32Array.of(1, 2, 3, 4) },
];

const CASES: Array<[string, InferResult, boolean]> = [
  ['first answer', result(), true],
  ['the same again', result(), true],
  ['another batch shape', result({ outputs: [{ name: 'output', datatype: 'FP32', shape: [1, 2], data: Float32Array.of(1, 2) }] }), true],
  ['more bytes, same shape length', result({ outputs: [{ name: 'output', datatype: 'FP32', shape: [3, 1], data: Float32Array.of(1, 2, 3) }] }), true],
  ['back to the first', result(), true],
  ['from the cache', result({ parameters: { cached: true } }), true],
  ['another version', result({ model_version: '2' }), true],
  ['another output name', result({ outputs: [{ name: 'prob', datatype: 'FP32', shape: [1, 1], data: Float32Array.of(0.25) }] }), true],
  ['another datatype', result({ outputs: [{ name: 'output', datatype: 'INT32', shape: [1, 1], data: Int32Array.of(7) }] }), true],
  ['two outputs', result({ outputs: two(), binary: [undefined, undefined] }), true],
  ['one of them as JSON', result({ outputs: two(), binary: [undefined, false] }), true],
  ['a JSON request', result(), false],
  ['with an id', result({ id: 'r-1' }), true],
  ['more parameters', result({ parameters: { cached: false, note: 'x' } }), true],
  ['another model', result({ model_name: 'ocr' }), true],
  ['the first model again', result(), true],
];

test('the header text is JSON.stringify of encodeResult header, answer after answer', () => {
  for (const [what, r, binary] of CASES) {
    const want = encodeResult(r, binary);
    const got = encodeResultJson(r, binary);
    assert.equal(got.json, JSON.stringify(want.header), what);
    assert.deepEqual(got.chunks.map((c) => Buffer.from(c.buffer, c.byteOffset, c.byteLength)), want.chunks.map((c) => Buffer.from(c.buffer, c.byteOffset, c.byteLength)), what);
  }
});
