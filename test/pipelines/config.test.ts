// model.json `pipeline`: checked at load, every problem a PERCH_ERR_MODEL_CONFIG_INVALID that
// names the step.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { PerchError } from '../../runtime/base/errors.js';
import { parseModelConfig } from '../../runtime/models/repository.js';
import { checkPipeline } from '../../runtime/pipelines/pipeline-executor.js';

const io = {
  inputs: [{ name: 'image', datatype: 'BYTES', dims: [1] }],
  outputs: [{ name: 'labels', datatype: 'BYTES', dims: [-1, 5] }, { name: 'scores', datatype: 'FP32', dims: [-1, 5] }],
};

function config(steps: unknown[]): ReturnType<typeof parseModelConfig> {
  return parseModelConfig('m', { ...io, pipeline: { steps } });
}

const decode = { name: 'decode', op: 'image.decode', from: 'image', to: 'picture' };
const tensor = { name: 'input', op: 'image.tensor', from: 'picture', to: 'x', resize: 'stretch', width: 224, height: 224 };
const run = { name: 'run', op: 'model', model: 'classifier', inputs: { data: 'x' }, outputs: { logits: 'logits' } };
const top = { name: 'top', op: 'classify.topk', from: 'logits', to: 'labels', scores: 'scores', labels: 'labels.txt', softmax: true };

test('a well-formed pipeline passes, with the schema defaults filled in', () => {
  const c = config([decode, tensor, run, top]);
  checkPipeline('m', c.pipeline!, c.inputs!, c.outputs!);
  assert.equal(c.pipeline!.concurrency, 16);
  assert.deepEqual(c.pipeline!.steps[1], { ...tensor, maxSide: 960, colour: 'RGB', mean: [0, 0, 0], std: [1, 1, 1], layout: 'NCHW' });
});

test('a step reading a value no earlier step makes, or an output no step makes, is refused', () => {
  const missing = config([decode, run, top]);
  assert.throws(() => checkPipeline('m', missing.pipeline!, missing.inputs!, missing.outputs!), (e: PerchError) => e.code === 'PERCH_ERR_MODEL_CONFIG_INVALID' && /step 'run' reads 'x'/.test(e.message));
  const noOutput = config([decode, tensor, run]);
  assert.throws(() => checkPipeline('m', noOutput.pipeline!, noOutput.inputs!, noOutput.outputs!), (e: PerchError) => /output 'labels' is made by no step/.test(e.message));
  const twice = config([decode, { ...tensor, name: 'decode' }, run, top]);
  assert.throws(() => checkPipeline('m', twice.pipeline!, twice.inputs!, twice.outputs!), (e: PerchError) => /two steps are named 'decode'/.test(e.message));
});

test('unknown ops, unknown keys and a pipeline without inputs are schema errors', () => {
  assert.throws(() => config([{ ...decode, op: 'image.sharpen' }]), (e: PerchError) => e.code === 'PERCH_ERR_MODEL_CONFIG_INVALID');
  assert.throws(() => config([{ ...decode, quality: 3 }]), (e: PerchError) => e.code === 'PERCH_ERR_MODEL_CONFIG_INVALID');
  assert.throws(() => parseModelConfig('m', { pipeline: { steps: [decode] } }), (e: PerchError) => /pipeline lists its inputs and outputs/.test(e.message));
});

test('a pipeline that decodes two images is refused: a run holds its pixels to its answer', () => {
  const second = { ...decode, name: 'decode-again', to: 'picture2' };
  const c = config([decode, second, tensor, run, top]);
  assert.throws(() => checkPipeline('m', c.pipeline!, c.inputs!, c.outputs!), (e: PerchError) => e.code === 'PERCH_ERR_MODEL_CONFIG_INVALID' && /'decode', 'decode-again' each decode an image/.test(e.message));
});
