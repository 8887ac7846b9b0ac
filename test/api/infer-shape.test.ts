// The hand-written check of common inference requests (runtime/api/infer-shape.ts) is only a
// shortcut past the zod schemas: whatever it accepts, the schema must accept too, and it must
// accept the requests real clients send (else it saves nothing).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { isCommonInferBody, isCommonInferMessage } from '../../runtime/api/infer-shape.js';
import { inferBodySchema } from '../../runtime/api/oip-schema.js';
import { inferMessageSchema } from '../../runtime/api/ws/messages.js';
import { DATATYPES } from '../../runtime/tensor/datatypes.js';

// Values near the edges of what the schemas allow, of every JSON kind.
const edgy = fc.oneof(
  fc.constantFrom(0, -1, 1.5, 2 ** 53, Number.MAX_SAFE_INTEGER, '', 'x', true, false, null, [], {}, [1], { a: 1 }),
  fc.constantFrom(...DATATYPES, 'FP8', 'fp32'),
  fc.jsonValue({ maxDepth: 2 }),
);
const maybe = <T>(arb: fc.Arbitrary<T>): fc.Arbitrary<T | undefined> => fc.option(arb, { nil: undefined, freq: 3 });
const either = <T>(good: fc.Arbitrary<T>): fc.Arbitrary<unknown> => fc.oneof({ weight: 15, arbitrary: good }, { weight: 1, arbitrary: edgy });

const input = fc.record({
  name: either(fc.constantFrom('input', 'state', 'x')),
  datatype: either(fc.constantFrom(...DATATYPES)),
  shape: either(fc.array(either(fc.nat(64)), { maxLength: 4 })),
  parameters: maybe(either(fc.record({ binary_data_size: maybe(either(fc.nat(4096))) }))),
  data: maybe(fc.jsonValue({ maxDepth: 2 })),
}, { requiredKeys: [] });
const output = fc.record({
  name: either(fc.constantFrom('output', 'stateN')),
  parameters: maybe(either(fc.record({ binary_data: maybe(either(fc.boolean())) }))),
}, { requiredKeys: [] });
const body = {
  inputs: either(fc.array(either(input), { maxLength: 3 })),
  outputs: maybe(either(fc.array(either(output), { maxLength: 2 }))),
  parameters: maybe(either(fc.dictionary(fc.string(), fc.jsonValue({ maxDepth: 1 })))),
};
const httpBody = fc.record({ ...body, id: maybe(either(fc.string())) }, { requiredKeys: [] });
const wsMessage = fc.record({
  ...body,
  id: either(fc.string()),
  op: either(fc.constantFrom('infer', 'emit')),
  model: either(fc.constantFrom('silero-vad', 'm')),
  version: maybe(either(fc.oneof(fc.string(), fc.integer()))),
}, { requiredKeys: [] });

// JSON.parse is what the servers validate: objects with Object.prototype, no undefined values.
const parsed = (v: unknown): unknown => JSON.parse(JSON.stringify(v)) as unknown;

describe('the fast check of inference requests', () => {
  test('accepts nothing the zod schemas refuse (HTTP body and WebSocket message)', () => {
    let fastAccepted = 0;
    fc.assert(fc.property(httpBody, wsMessage, (b, m) => {
      const body = parsed(b);
      const message = parsed(m);
      if (isCommonInferBody(body)) {
        fastAccepted++;
        assert.ok(inferBodySchema.safeParse(body).success, JSON.stringify(body));
      }
      if (isCommonInferMessage(message)) {
        fastAccepted++;
        assert.ok(inferMessageSchema.safeParse(message).success, JSON.stringify(message));
      }
    }), { numRuns: 3000 });
    assert.ok(fastAccepted > 100, `the generator produced only ${fastAccepted} accepted requests`);
  });

  test('accepts the requests clients send: binary and JSON tensors, outputs, parameters', () => {
    const message = {
      id: 'r1', op: 'infer', model: 'silero-vad', version: 1,
      parameters: { sequence_id: 'mic-1', sequence_start: true, binary_data_output: true },
      inputs: [
        { name: 'input', datatype: 'FP32', shape: [1, 576], parameters: { binary_data_size: 2304 } },
        { name: 'sr', datatype: 'INT64', shape: [], data: [16000] },
      ],
      outputs: [{ name: 'output', parameters: { binary_data: false } }],
    };
    assert.ok(isCommonInferMessage(message));
    assert.ok(isCommonInferBody({ id: 'a', inputs: message.inputs, outputs: message.outputs }));
    assert.ok(isCommonInferMessage({ ...message, version: '2' }));
  });

  test('leaves to the schemas what they refuse, so their error is the one clients get', () => {
    const ok = { id: 'r', op: 'infer', model: 'm', inputs: [{ name: 'x', datatype: 'FP32', shape: [1], data: [1] }] };
    for (const bad of [
      { ...ok, inputs: [] },
      { ...ok, model: '' },
      { ...ok, version: 1.5 },
      { ...ok, inputs: [{ name: 'x', datatype: 'FP8', shape: [1] }] },
      { ...ok, inputs: [{ name: 'x', datatype: 'FP32', shape: [-1] }] },
      { ...ok, inputs: [{ name: 'x', datatype: 'FP32', shape: [1], parameters: { binary_data_size: -4 } }] },
      { ...ok, outputs: [{ name: 'y', parameters: { binary_data: 'yes' } }] },
      { ...ok, parameters: [] },
    ]) {
      assert.equal(isCommonInferMessage(bad), false, JSON.stringify(bad));
      assert.equal(inferMessageSchema.safeParse(bad).success, false, JSON.stringify(bad));
    }
  });
});
