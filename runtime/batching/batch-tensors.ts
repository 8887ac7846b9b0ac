// Stacking a batch of prepared requests into one set of feeds, and splitting the session's
// outputs back, each along its own batchAxis (silero-vad's state is stacked on axis 1).
import { PerchError } from '../base/errors.js';
import type { ResolvedModelConfig } from '../models/resolve-config.js';
import { concatAlongAxis, splitAlongAxis, type Tensor } from '../tensor/tensor.js';
import type { BufferPool } from '../tensor/buffer-pool.js';
import type { PreparedRequest } from './prepare.js';

/** With a pool, the stacked buffers are taken from it (the model instance's: buffer-pool.ts). */
export function stackInputs(model: ResolvedModelConfig, batch: readonly PreparedRequest[], pool?: BufferPool): Tensor[] {
  const first = batch[0] as PreparedRequest;
  if (batch.length === 1) return first.inputs;
  return model.inputs.map((spec, i) =>
    spec.batchAxis === null
      ? (first.inputs[i] as Tensor) // equal in every request: the group key says so
      : concatAlongAxis(batch.map((r) => r.inputs[i] as Tensor), spec.batchAxis, pool),
  );
}

/** `owned`: the outputs are the executor's new buffers, to be split in place (executor.ts). */
export function splitOutputs(model: ResolvedModelConfig, batch: readonly PreparedRequest[], outputs: Tensor[], owned = false): Tensor[][] {
  if (batch.length === 1) return [outputs];
  const sizes = batch.map((r) => r.items);
  const total = sizes.reduce((a, b) => a + b, 0);
  const perRequest: Tensor[][] = batch.map(() => []);
  for (const out of outputs) {
    const axis = model.outputs.find((s) => s.name === out.name)?.batchAxis ?? null;
    if (axis === null) {
      for (const r of perRequest) r.push(out);
      continue;
    }
    if (out.shape[axis] !== total) {
      throw new PerchError('PERCH_ERR_INFERENCE_FAILED', `output '${out.name}' has ${out.shape[axis]} items on batch axis ${axis}, the batch had ${total}`);
    }
    splitAlongAxis(out, axis, sizes, owned).forEach((part, i) => (perRequest[i] as Tensor[]).push(part));
  }
  return perRequest;
}
