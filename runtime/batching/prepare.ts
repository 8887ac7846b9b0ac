// Checks a request's tensors against the model (names, datatypes, shapes, batch size) and
// computes what the batcher needs: the number of batch items and the group key. Two requests
// are only stacked when their keys are equal: same non-batch dims for every batched input and
// the same values for every unbatched input (docs/protocol.md section 1, batchAxis null).
import type { RequestTrace } from '../base/request-trace.js';
import { createHash } from 'node:crypto';
import { PerchError } from '../base/errors.js';
import type { ResolvedModelConfig, TensorSpec } from '../models/resolve-config.js';
import type { Tensor } from '../tensor/tensor.js';

export interface PreparedRequest {
  /** Inputs in the model's input order. */
  inputs: Tensor[];
  /** Batch items (1 when the model takes no batch). */
  items: number;
  groupKey: string;
  /** The request's spans while tracing is on (docs/observability.md); undefined otherwise. */
  trace: RequestTrace | undefined;
}

function shapeError(spec: TensorSpec, t: Tensor, why: string): PerchError {
  return new PerchError('PERCH_ERR_SHAPE_MISMATCH', `input '${spec.name}': shape ${JSON.stringify(t.shape)} does not fit dims ${JSON.stringify(spec.dims)}: ${why}`);
}

export function prepareInputs(model: ResolvedModelConfig, inputs: readonly Tensor[]): PreparedRequest {
  // Plain loops, no Map or closures: this runs for every request (thousands a second with many
  // streams), and a model has a handful of inputs.
  for (let i = 0; i < inputs.length; i++) {
    const name = (inputs[i] as Tensor).name;
    for (let j = 0; j < i; j++) {
      if ((inputs[j] as Tensor).name === name) throw new PerchError('PERCH_ERR_INVALID_MESSAGE', `input '${name}' is given twice`);
    }
    if (!model.inputs.some((s) => s.name === name)) {
      throw new PerchError('PERCH_ERR_UNKNOWN_INPUT', `model '${model.name}' has no input '${name}' (inputs: ${model.inputs.map((s) => s.name).join(', ')})`);
    }
  }
  // Of the right length: pushing onto [] gives an array room for 16 (issue 20).
  const ordered = new Array<Tensor>(model.inputs.length);
  let items: number | null = null;
  for (let s = 0; s < model.inputs.length; s++) {
    const spec = model.inputs[s] as TensorSpec;
    const t = find(inputs, spec.name);
    if (!t) throw new PerchError('PERCH_ERR_MISSING_INPUT', `model '${model.name}' needs input '${spec.name}'`);
    if (t.datatype !== spec.datatype) {
      throw new PerchError('PERCH_ERR_DATATYPE_MISMATCH', `input '${spec.name}' must be ${spec.datatype}, got ${t.datatype}`);
    }
    if (t.shape.length !== spec.dims.length) throw shapeError(spec, t, `expected ${spec.dims.length} axes`);
    for (let i = 0; i < spec.dims.length; i++) {
      const d = spec.dims[i] as number;
      if (d !== -1 && t.shape[i] !== d) throw shapeError(spec, t, `axis ${i} must be ${d}`);
    }
    if (spec.batchAxis !== null) {
      const n = t.shape[spec.batchAxis] as number;
      if (n < 1) throw shapeError(spec, t, `batch axis ${spec.batchAxis} must be at least 1`);
      if (items !== null && n !== items) {
        throw shapeError(spec, t, `its batch axis holds ${n} items but another input holds ${items}`);
      }
      items = n;
    }
    ordered[s] = t;
  }
  const n = items ?? 1;
  if (model.maxBatchSize > 0 && n > model.maxBatchSize) {
    throw new PerchError('PERCH_ERR_BATCH_TOO_LARGE', `batch of ${n} items is over maxBatchSize ${model.maxBatchSize} of model '${model.name}'`);
  }
  return { inputs: ordered, items: n, groupKey: groupKeyOf(model, ordered), trace: undefined };
}

/** The last group key made for a model, and the shapes and unbatched digests it was made from. */
interface LastKey {
  shapes: number[][];
  digests: string[];
  /** Input s's one integer element where digests[s] is its decimal form (a sample rate), else null. */
  scalars: (number | bigint | null)[];
  key: string;
}

const lastKeys = new WeakMap<ResolvedModelConfig, LastKey>();

/**
 * The group key of checked inputs (in the model's order). A stream sends the same shapes and
 * the same unbatched values (a sample rate) chunk after chunk: the key made for the model's
 * last request is reused while they match, so a request makes no key string of its own and the
 * batcher compares keys that are one string (docs/benchmarks.md, issue 20).
 */
function groupKeyOf(model: ResolvedModelConfig, ordered: readonly Tensor[]): string {
  const specs = model.inputs;
  const last = lastKeys.get(model);
  if (last && sameKeyInputs(last, model, ordered)) return last.key;
  const digests: string[] = [];
  const scalars: (number | bigint | null)[] = [];
  for (let i = 0; i < specs.length; i++) {
    const spec = specs[i] as TensorSpec;
    const keyed = spec.batchAxis === null && model.maxBatchSize > 0;
    digests.push(keyed ? digest(ordered[i] as Tensor) : '');
    scalars.push(keyed ? integerScalar(ordered[i] as Tensor) : null);
  }
  let key = '';
  for (let s = 0; s < specs.length; s++) {
    const spec = specs[s] as TensorSpec;
    const shape = (ordered[s] as Tensor).shape;
    if (key !== '') key += '|';
    if (spec.batchAxis === null) {
      key += `${spec.name}=${shape.join('x')}:${digests[s] as string}`;
    } else {
      key += `${spec.name}=`;
      for (let i = 0; i < shape.length; i++) key += (i > 0 ? 'x' : '') + (i === spec.batchAxis ? '*' : String(shape[i]));
    }
  }
  lastKeys.set(model, { shapes: ordered.map((t) => t.shape.slice()), digests, scalars, key });
  return key;
}

/**
 * Same shapes (the batch axis aside) and the same digests of unbatched inputs as `last`. A
 * one-element integer input is compared by its value, which is what its digest spells: no
 * digest string per request (String() of an INT64 sample rate's BigInt was one per chunk).
 */
function sameKeyInputs(last: LastKey, model: ResolvedModelConfig, ordered: readonly Tensor[]): boolean {
  const specs = model.inputs;
  for (let s = 0; s < specs.length; s++) {
    const t = ordered[s] as Tensor;
    if ((specs[s] as TensorSpec).batchAxis === null && model.maxBatchSize > 0) {
      const scalar = last.scalars[s] ?? null;
      const v = integerScalar(t);
      if (scalar !== null || v !== null) {
        if (v !== scalar) return false;
      } else if (last.digests[s] !== digest(t)) {
        return false;
      }
    }
    const a = last.shapes[s] as number[];
    const b = t.shape;
    if (a.length !== b.length) return false;
    const axis = (specs[s] as TensorSpec).batchAxis;
    for (let i = 0; i < a.length; i++) if (i !== axis && a[i] !== b[i]) return false;
  }
  return true;
}

function find(inputs: readonly Tensor[], name: string): Tensor | undefined {
  for (const t of inputs) if (t.name === name) return t;
  return undefined;
}

/**
 * The one element of a one-element integer tensor (a sample rate, a flag), else null. Floats are
 * left out: they go by their bytes, so that 0 and -0 or two NaNs never share a batch they would
 * not share bit for bit.
 */
function integerScalar(t: Tensor): number | bigint | null {
  const d = t.data;
  if (Array.isArray(d) || d.length !== 1 || d instanceof Float32Array || d instanceof Float64Array || t.datatype === 'FP16') return null;
  return d[0] as number | bigint;
}

/** Short exact form for small tensors (scalars like a sample rate), a hash for big ones. */
function digest(t: Tensor): string {
  const d = t.data;
  if (Array.isArray(d)) return createHash('sha1').update(JSON.stringify(d)).digest('base64');
  // One integer element: its decimal form is exact.
  const scalar = integerScalar(t);
  if (scalar !== null) return String(scalar);
  const bytes = Buffer.from(d.buffer, d.byteOffset, d.byteLength);
  return bytes.byteLength <= 64 ? bytes.toString('base64') : createHash('sha1').update(bytes).digest('base64');
}
