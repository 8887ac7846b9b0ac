// One inference right after a session is created, so the first real request does not pay
// onnxruntime's lazy initialisation, and a model that cannot run fails at load instead of on
// its first request. Inputs are zeros at batch 1 unless model.json's `warmup` gives values
// (silero-vad needs a real sample rate); a model with other dynamic axes is not warmed up
// unless model.json gives those inputs' shapes.
import { PerchError } from '../base/errors.js';
import { allocate } from '../tensor/datatypes.js';
import { decodeJsonData } from '../tensor/json-codec.js';
import { elementCount, type Tensor } from '../tensor/tensor.js';
import type { Executor } from '../sessions/executor.js';
import type { WarmupConfig } from './model-config.js';
import type { ResolvedModelConfig } from './resolve-config.js';

/** The warm-up feeds, or null when the model's shapes cannot be guessed. */
function warmupFeeds(model: ResolvedModelConfig, warmup: WarmupConfig): Tensor[] | null {
  if (warmup === false) return null;
  const feeds: Tensor[] = [];
  for (const spec of model.inputs) {
    const given = warmup.inputs[spec.name];
    const shape = given?.shape ?? spec.dims.map((d, i) => (i === spec.batchAxis && d === -1 ? 1 : d));
    if (shape.some((d) => d < 0)) return null;
    const data = given?.data !== undefined
      ? decodeJsonData(spec.name, spec.datatype, shape, given.data)
      : allocate(spec.datatype, elementCount(shape));
    feeds.push({ name: spec.name, datatype: spec.datatype, shape, data });
  }
  return feeds;
}

export async function warmUp(model: ResolvedModelConfig, warmup: WarmupConfig, executor: Executor): Promise<boolean> {
  let feeds: Tensor[] | null;
  try {
    feeds = warmupFeeds(model, warmup);
  } catch (err) {
    throw new PerchError('PERCH_ERR_MODEL_WARMUP_FAILED', `model '${model.name}': warmup inputs: ${(err as Error).message}`, { cause: err });
  }
  if (!feeds) return false;
  try {
    await executor.run(feeds);
  } catch (err) {
    throw new PerchError('PERCH_ERR_MODEL_WARMUP_FAILED', `model '${model.name}': warm-up inference failed: ${(err as Error).message}`, { cause: err });
  }
  return true;
}
