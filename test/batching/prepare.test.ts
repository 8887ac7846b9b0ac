// The batcher stacks two requests only when their group keys are equal: same non-batch dims of
// every batched input and bit-for-bit the same unbatched inputs. prepareInputs also orders the
// inputs as the model lists them and refuses what does not fit.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { prepareInputs } from '../../runtime/batching/prepare.js';
import type { ResolvedModelConfig } from '../../runtime/models/resolve-config.js';
import { PerchError } from '../../runtime/base/errors.js';
import type { Tensor } from '../../runtime/tensor/tensor.js';

const model = {
  name: 'm',
  maxBatchSize: 8,
  inputs: [
    { name: 'x', datatype: 'FP32', dims: [-1, -1], batchAxis: 0 },
    { name: 'state', datatype: 'FP32', dims: [2, -1, 4], batchAxis: 1 },
    { name: 'rate', datatype: 'INT64', dims: [], batchAxis: null },
    { name: 'gain', datatype: 'FP32', dims: [1], batchAxis: null },
  ],
  outputs: [],
  sequence: null,
} as unknown as ResolvedModelConfig;

function request(o: { items?: number; width?: number; rate?: bigint; gain?: number }): Tensor[] {
  const items = o.items ?? 1;
  const width = o.width ?? 3;
  return [
    { name: 'gain', datatype: 'FP32', shape: [1], data: Float32Array.from([o.gain ?? 1]) },
    { name: 'state', datatype: 'FP32', shape: [2, items, 4], data: new Float32Array(8 * items) },
    { name: 'rate', datatype: 'INT64', shape: [], data: BigInt64Array.from([o.rate ?? 16000n]) },
    { name: 'x', datatype: 'FP32', shape: [items, width], data: new Float32Array(items * width) },
  ];
}

const key = (o: Parameters<typeof request>[0]): string => prepareInputs(model, request(o)).groupKey;

function refusal(inputs: Tensor[]): string {
  try {
    prepareInputs(model, inputs);
  } catch (err) {
    return (err as PerchError).code;
  }
  return 'accepted';
}

describe('prepareInputs', () => {
  test('orders the inputs as the model does and counts the batch items', () => {
    const p = prepareInputs(model, request({ items: 3 }));
    assert.deepEqual(p.inputs.map((t) => t.name), ['x', 'state', 'rate', 'gain']);
    assert.equal(p.items, 3);
  });

  test('group keys: equal for requests that may share a batch, different otherwise', () => {
    assert.equal(key({ items: 1 }), key({ items: 5 }), 'the batch size is not part of the key');
    assert.notEqual(key({ width: 3 }), key({ width: 4 }), 'a non-batch dimension is');
    assert.notEqual(key({ rate: 16000n }), key({ rate: 8000n }), 'so is an unbatched integer value');
    assert.equal(key({ rate: 8000n }), key({ rate: 8000n }));
    assert.notEqual(key({ gain: 0 }), key({ gain: -0 }), 'floats go by their bits: 0 and -0 differ');
    assert.equal(key({ gain: 0.5 }), key({ gain: 0.5 }));
  });

  test('a key reused from the model\'s last request (prepare.ts groupKeyOf) is the key its own inputs make', () => {
    // The same model config throughout: each request after the first may reuse the last key.
    const fresh = (o: Parameters<typeof request>[0]): string => prepareInputs({ ...model } as ResolvedModelConfig, request(o)).groupKey;
    const sequence: Array<Parameters<typeof request>[0]> = [
      { items: 1 }, { items: 4 }, { width: 4 }, { width: 4, items: 2 }, { width: 3 }, { rate: 8000n }, { rate: 8000n, items: 3 },
      { gain: -0 }, { gain: 0 }, { gain: 0 }, {}, { width: 30 }, { width: 3 },
    ];
    for (const o of sequence) assert.equal(key(o), fresh(o), JSON.stringify(o, (_k, v: unknown) => (typeof v === 'bigint' ? String(v) : v)));
    assert.equal(key({ items: 2 }), 'x=*x3|state=2x*x4|rate=:16000|gain=1:AACAPw==');
  });

  test('refuses duplicates, unknown and missing inputs, wrong types and shapes, oversized batches', () => {
    const ok = request({});
    assert.equal(refusal([...ok, ok[0] as Tensor]), 'PERCH_ERR_INVALID_MESSAGE');
    assert.equal(refusal([...ok, { name: 'y', datatype: 'FP32', shape: [1], data: new Float32Array(1) }]), 'PERCH_ERR_UNKNOWN_INPUT');
    assert.equal(refusal(ok.slice(1)), 'PERCH_ERR_MISSING_INPUT');
    assert.equal(refusal(ok.map((t) => (t.name === 'gain' ? { ...t, datatype: 'FP64' as const, data: new Float64Array(1) } : t))), 'PERCH_ERR_DATATYPE_MISMATCH');
    assert.equal(refusal(ok.map((t) => (t.name === 'state' ? { ...t, shape: [3, 1, 4] } : t))), 'PERCH_ERR_SHAPE_MISMATCH');
    assert.equal(refusal(request({ items: 9 })), 'PERCH_ERR_BATCH_TOO_LARGE');
    const x = request({ items: 2 }).find((t) => t.name === 'x') as Tensor;
    assert.equal(refusal(request({ items: 1 }).map((t) => (t.name === 'x' ? x : t))), 'PERCH_ERR_SHAPE_MISMATCH', 'batch axes disagree');
  });
});
