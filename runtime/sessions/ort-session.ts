// Creating onnxruntime sessions. Used on the main thread (inline executor) and inside session
// workers, so it imports nothing that needs the main thread.
import ort from 'onnxruntime-node';
import { datatypeFromOrt, ortType, type Datatype } from '../tensor/datatypes.js';
import type { Tensor } from '../tensor/tensor.js';
import type { SessionConfig } from './session-config.js';
import type { OrtTensorMetadata } from './executor.js';
import { PerchError } from '../base/errors.js';
import { disableOrtTelemetry } from './ort-telemetry.js';

// Before any session: on the main thread this module is loaded with the models room, long before
// the first session opens (ort-telemetry.ts says why).
disableOrtTelemetry();

export interface OpenedSession {
  session: ort.InferenceSession;
  /** The execution providers actually in use. */
  providers: string[];
  /** Why a requested provider is not in use (it fell back to CPU). */
  warnings: string[];
  inputs: OrtTensorMetadata[];
  outputs: OrtTensorMetadata[];
}

function options(cfg: SessionConfig, providers: string[]): ort.InferenceSession.SessionOptions {
  return {
    intraOpNumThreads: cfg.intraOpNumThreads,
    interOpNumThreads: cfg.interOpNumThreads,
    executionMode: 'sequential',
    graphOptimizationLevel: cfg.graphOptimizationLevel,
    executionProviders: providers,
    // ORT warns on stderr about harmless graph clean-ups (e.g. BlazeFace's unused initializers).
    logSeverityLevel: 3,
  };
}

/**
 * Opens a session with the configured execution providers. A provider that is not there (no
 * GPU library, or not built for this platform) makes ORT throw at creation: fall back to CPU
 * with a warning instead of failing the model (docs/design.md: "fall back to `cpu` explicitly").
 */
export async function openSession(path: string, cfg: SessionConfig): Promise<OpenedSession> {
  const wanted = cfg.executionProviders;
  const warnings: string[] = [];
  let session: ort.InferenceSession;
  let providers = wanted;
  try {
    session = await ort.InferenceSession.create(path, options(cfg, wanted));
  } catch (err) {
    if (wanted.length === 1 && wanted[0] === 'cpu') throw err;
    warnings.push(`execution providers [${wanted.join(', ')}] unavailable (${(err as Error).message}); using cpu`);
    providers = ['cpu'];
    session = await ort.InferenceSession.create(path, options(cfg, providers));
  }
  return {
    session,
    providers,
    warnings,
    inputs: session.inputMetadata.map(toMeta),
    outputs: session.outputMetadata.map(toMeta),
  };
}

function toMeta(m: ort.InferenceSession.ValueMetadata): OrtTensorMetadata {
  return m.isTensor
    ? { name: m.name, isTensor: true, type: m.type, shape: m.shape.slice() }
    : { name: m.name, isTensor: false };
}

/** The wire form of a tensor between threads: plain data, structured-clone friendly. */
export interface WireTensor {
  name: string;
  datatype: Datatype;
  shape: number[];
  data: Tensor['data'];
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * BYTES elements are arbitrary bytes (docs/api.md); an ONNX string tensor holds text, so what a
 * model takes as a string must be UTF-8.
 */
function asStrings(t: Tensor): string[] {
  return (t.data as Uint8Array[]).map((e, i) => {
    try {
      return utf8.decode(e);
    } catch {
      throw new PerchError('PERCH_ERR_TENSOR_DATA', `tensor '${t.name}': BYTES element ${i} is not UTF-8 (the model takes text)`);
    }
  });
}

export function toOrtFeeds(feeds: readonly Tensor[]): Record<string, ort.Tensor> {
  const out: Record<string, ort.Tensor> = {};
  for (const t of feeds) {
    out[t.name] = t.datatype === 'BYTES'
      ? new ort.Tensor('string', asStrings(t), t.shape)
      : new ort.Tensor(ortType(t.datatype) as 'float32', t.data as Float32Array, t.shape);
  }
  return out;
}

export function fromOrtResults(results: ort.InferenceSession.ReturnType): Tensor[] {
  const out: Tensor[] = [];
  for (const [name, value] of Object.entries(results)) {
    const datatype = datatypeFromOrt(value.type);
    if (!datatype) throw new PerchError('PERCH_ERR_INFERENCE_FAILED', `output '${name}' has unsupported type ${value.type}`);
    const data = datatype === 'BYTES' ? (value.data as string[]).map((v) => Buffer.from(v, 'utf8')) : (value.data as Tensor['data']);
    out.push({ name, datatype, shape: value.dims.slice(), data });
  }
  return out;
}
