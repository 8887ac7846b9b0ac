// Checks a request's tensors against the model (names, datatypes, shapes, batch size) and
// computes what the batcher needs: the number of batch items and the group key. Two requests
// are only stacked when their keys are equal: same non-batch dims for every batched input and
// the same values for every unbatched input (PROTOCOL section 1, batchAxis null).
import { createHash } from 'node:crypto';
import { PerchError } from '../errors.js';
import type { ResolvedModelConfig, TensorSpec } from '../models/resolve-config.js';
import type { Tensor } from '../tensor/tensor.js';

export interface PreparedRequest {
  /** Inputs in the model's input order. */
  inputs: Tensor[];
  /** Batch items (1 when the model takes no batch). */
  items: number;
  groupKey: string;
}

function shapeError(spec: TensorSpec, t: Tensor, why: string): PerchError {
  return new PerchError('PERCH_ERR_SHAPE_MISMATCH', `input '${spec.name}': shape ${JSON.stringify(t.shape)} does not fit dims ${JSON.stringify(spec.dims)}: ${why}`);
}

export function prepareInputs(model: ResolvedModelConfig, inputs: readonly Tensor[]): PreparedRequest {
  const byName = new Map<string, Tensor>();
  for (const t of inputs) {
    if (byName.has(t.name)) throw new PerchError('PERCH_ERR_INVALID_MESSAGE', `input '${t.name}' is given twice`);
    byName.set(t.name, t);
  }
  for (const name of byName.keys()) {
    if (!model.inputs.some((s) => s.name === name)) {
      throw new PerchError('PERCH_ERR_UNKNOWN_INPUT', `model '${model.name}' has no input '${name}' (inputs: ${model.inputs.map((s) => s.name).join(', ')})`);
    }
  }
  const ordered: Tensor[] = [];
  const keyParts: string[] = [];
  let items: number | null = null;
  for (const spec of model.inputs) {
    const t = byName.get(spec.name);
    if (!t) throw new PerchError('PERCH_ERR_MISSING_INPUT', `model '${model.name}' needs input '${spec.name}'`);
    if (t.datatype !== spec.datatype) {
      throw new PerchError('PERCH_ERR_DATATYPE_MISMATCH', `input '${spec.name}' must be ${spec.datatype}, got ${t.datatype}`);
    }
    if (t.shape.length !== spec.dims.length) throw shapeError(spec, t, `expected ${spec.dims.length} axes`);
    spec.dims.forEach((d, i) => {
      const got = t.shape[i] as number;
      if (d !== -1 && got !== d) throw shapeError(spec, t, `axis ${i} must be ${d}`);
    });
    if (spec.batchAxis === null) {
      keyParts.push(`${spec.name}=${t.shape.join('x')}:${model.maxBatchSize > 0 ? digest(t) : ''}`);
    } else {
      const n = t.shape[spec.batchAxis] as number;
      if (n < 1) throw shapeError(spec, t, `batch axis ${spec.batchAxis} must be at least 1`);
      if (items !== null && n !== items) {
        throw shapeError(spec, t, `its batch axis holds ${n} items but another input holds ${items}`);
      }
      items = n;
      keyParts.push(`${spec.name}=${t.shape.map((d, i) => (i === spec.batchAxis ? '*' : d)).join('x')}`);
    }
    ordered.push(t);
  }
  const n = items ?? 1;
  if (model.maxBatchSize > 0 && n > model.maxBatchSize) {
    throw new PerchError('PERCH_ERR_BATCH_TOO_LARGE', `batch of ${n} items is over maxBatchSize ${model.maxBatchSize} of model '${model.name}'`);
  }
  return { inputs: ordered, items: n, groupKey: keyParts.join('|') };
}

/** Short exact form for small tensors (scalars like a sample rate), a hash for big ones. */
function digest(t: Tensor): string {
  const d = t.data;
  if (Array.isArray(d)) return createHash('sha1').update(JSON.stringify(d)).digest('base64');
  const bytes = new Uint8Array(d.buffer, d.byteOffset, d.byteLength);
  return bytes.byteLength <= 64 ? Buffer.from(bytes).toString('base64') : createHash('sha1').update(bytes).digest('base64');
}
