// Merges model.json with what the ONNX file says of itself. Without model.json (or for tensors
// it does not list) names, types and shapes come from the ONNX metadata. A model.json that
// contradicts the file is refused with PERCH_ERR_MODEL_CONFIG_MISMATCH: serving it would fail
// on every request instead of once, at load.
import { PerchError } from '../base/errors.js';
import { datatypeFromOrt, type Datatype } from '../tensor/datatypes.js';
import type { OrtTensorMetadata } from '../sessions/executor.js';
import type { SessionConfig } from '../sessions/session-config.js';
import type { BatchingConfig, ModelCacheConfig, ModelConfigFile, SequenceConfig, TensorSpecInput } from './model-config.js';

export interface TensorSpec {
  name: string;
  datatype: Datatype;
  /** Every axis; -1 = any size. */
  dims: number[];
  /** Stacking axis, or null when the tensor is not batched (or the model takes no batch). */
  batchAxis: number | null;
}

export interface ResolvedModelConfig {
  name: string;
  maxBatchSize: number;
  inputs: TensorSpec[];
  outputs: TensorSpec[];
  batching: BatchingConfig;
  session: SessionConfig;
  cache: ModelCacheConfig;
  sequence: SequenceConfig | null;
}

/** Used when nothing says otherwise and every tensor has a dynamic first axis. */
const DEFAULT_MAX_BATCH_SIZE = 64;

/**
 * Whether the batch axis of a tensor is known. model.json says it for the tensors it lists; for
 * the others the file only gives dims, and a dynamic first axis is taken as the batch axis. A
 * fixed first axis (Silero VAD's state is [2, batch, 128]) or no axis at all proves nothing:
 * the batch may be on another axis, or the tensor may be shared by the whole batch.
 */
function batchAxisKnown(t: TensorSpec, declared: ReadonlySet<string>): boolean {
  if (declared.has(t.name)) return true;
  return t.dims.length > 0 && t.dims[0] === -1;
}

function mismatch(model: string, msg: string): PerchError {
  return new PerchError('PERCH_ERR_MODEL_CONFIG_MISMATCH', `model '${model}': ${msg}`);
}

function fromOrt(model: string, meta: OrtTensorMetadata): TensorSpec {
  const datatype = meta.isTensor && meta.type ? datatypeFromOrt(meta.type) : undefined;
  if (!datatype || !meta.shape) {
    throw new PerchError('PERCH_ERR_MODEL_LOAD_FAILED', `model '${model}': '${meta.name}' is not a tensor of a supported type (${meta.type ?? 'non-tensor'})`);
  }
  const dims = meta.shape.map((d) => (typeof d === 'number' && d >= 0 ? d : -1));
  return { name: meta.name, datatype, dims, batchAxis: dims.length > 0 && dims[0] === -1 ? 0 : null };
}

function merge(model: string, kind: string, declared: TensorSpecInput, actual: TensorSpec | undefined): TensorSpec {
  if (!actual) throw mismatch(model, `${kind} '${declared.name}' is not in the ONNX file`);
  if (declared.datatype !== actual.datatype) {
    throw mismatch(model, `${kind} '${declared.name}' is ${actual.datatype} in the ONNX file, model.json says ${declared.datatype}`);
  }
  if (declared.dims.length !== actual.dims.length) {
    throw mismatch(model, `${kind} '${declared.name}' has ${actual.dims.length} axes in the ONNX file, model.json gives ${declared.dims.length}`);
  }
  const dims = declared.dims.map((d, i) => {
    const a = actual.dims[i] as number;
    if (d !== -1 && a !== -1 && d !== a) {
      throw mismatch(model, `${kind} '${declared.name}' axis ${i} is ${a} in the ONNX file, model.json says ${d}`);
    }
    return d === -1 ? a : d; // model.json may pin a dynamic axis; never free a fixed one
  });
  const batchAxis = declared.batchAxis === undefined ? (dims.length > 0 ? 0 : null) : declared.batchAxis;
  if (batchAxis !== null && batchAxis >= dims.length) {
    throw mismatch(model, `${kind} '${declared.name}' batchAxis ${batchAxis} is outside its ${dims.length} axes`);
  }
  return { name: declared.name, datatype: declared.datatype, dims, batchAxis };
}

function resolveTensors(model: string, kind: string, declared: TensorSpecInput[] | undefined, actual: TensorSpec[]): TensorSpec[] {
  if (!declared) return actual;
  const byName = new Map(actual.map((t) => [t.name, t]));
  const seen = new Set<string>();
  const specs = declared.map((d) => {
    if (seen.has(d.name)) throw mismatch(model, `${kind} '${d.name}' is listed twice`);
    seen.add(d.name);
    return merge(model, kind, d, byName.get(d.name));
  });
  // Tensors model.json leaves out keep what the file says.
  for (const a of actual) if (!seen.has(a.name)) specs.push(a);
  return specs;
}

export function resolveModelConfig(
  name: string,
  file: ModelConfigFile,
  ort: { inputs: readonly OrtTensorMetadata[]; outputs: readonly OrtTensorMetadata[] },
): ResolvedModelConfig {
  if (file.name !== undefined && file.name !== name) {
    throw new PerchError('PERCH_ERR_MODEL_CONFIG_INVALID', `model '${name}': model.json names it '${file.name}'; the folder name is the model's name`);
  }
  const inputs = resolveTensors(name, 'input', file.inputs, ort.inputs.map((m) => fromOrt(name, m)));
  const outputs = resolveTensors(name, 'output', file.outputs, ort.outputs.map((m) => fromOrt(name, m)));
  const all = [...inputs, ...outputs];
  const declared = new Set([...(file.inputs ?? []), ...(file.outputs ?? [])].map((t) => t.name));
  // Inferred batching stacks requests only along axes it knows to be batch axes: a model with any
  // tensor whose batch axis is unknown runs requests one by one (docs/models.md).
  const batchable = inputs.some((t) => t.batchAxis !== null)
    && all.every((t) => batchAxisKnown(t, declared) && (t.batchAxis === null || t.dims[t.batchAxis] === -1));
  const maxBatchSize = file.maxBatchSize ?? (batchable ? DEFAULT_MAX_BATCH_SIZE : 0);
  if (maxBatchSize > 0) {
    if (!inputs.some((t) => t.batchAxis !== null)) throw mismatch(name, 'maxBatchSize > 0 but no input has a batchAxis');
    for (const t of all) {
      // Not guessed even when model.json asks for batches: a fixed first axis with a dynamic one
      // further on is most likely a batch axis in the middle.
      if (!batchAxisKnown(t, declared) && t.dims.some((d) => d === -1)) {
        throw mismatch(name, `'${t.name}' has dims [${t.dims.join(', ')}]: its batch axis cannot be told from the file; list it in model.json with its batchAxis (a number, or null if it is not batched)`);
      }
    }
    for (const t of all) {
      if (t.batchAxis !== null && t.dims[t.batchAxis] !== -1) {
        throw mismatch(name, `'${t.name}' has fixed size ${t.dims[t.batchAxis]} on its batchAxis ${t.batchAxis}: it cannot be batched (set maxBatchSize 0 or batchAxis null)`);
      }
    }
  }
  if (file.sequence) checkSequence(name, file.sequence, inputs, outputs, maxBatchSize);
  // With no batching every tensor is taken whole, as sent.
  const unbatched = (t: TensorSpec): TensorSpec => ({ ...t, batchAxis: null });
  return {
    name,
    maxBatchSize,
    inputs: maxBatchSize > 0 ? inputs : inputs.map(unbatched),
    outputs: maxBatchSize > 0 ? outputs : outputs.map(unbatched),
    batching: file.batching,
    session: file.session,
    cache: file.cache,
    sequence: file.sequence ?? null,
  };
}

/** Each state pair names an input and an output of the same type and shape, fixed but for the batch axis. */
function checkSequence(model: string, seq: SequenceConfig, inputs: TensorSpec[], outputs: TensorSpec[], maxBatchSize: number): void {
  for (const s of seq.state) {
    const i = inputs.find((t) => t.name === s.input);
    const o = outputs.find((t) => t.name === s.output);
    if (!i) throw mismatch(model, `sequence state input '${s.input}' is not an input of the model`);
    if (!o) throw mismatch(model, `sequence state output '${s.output}' is not an output of the model`);
    if (i.datatype !== o.datatype || i.dims.length !== o.dims.length) {
      throw mismatch(model, `sequence state '${s.input}' and '${s.output}' differ in datatype or rank`);
    }
    if (maxBatchSize > 0 && (i.batchAxis === null || o.batchAxis === null)) {
      throw mismatch(model, `sequence state '${s.input}' / '${s.output}' need a batchAxis to be batched across sequences`);
    }
    i.dims.forEach((d, axis) => {
      if (axis !== i.batchAxis && d === -1) {
        throw mismatch(model, `sequence state '${s.input}' axis ${axis} is dynamic: give its size in model.json so the state can start as zeros`);
      }
    });
  }
}
