// The wire and session halves of the hand-written minimal servers (bench/lib/minimal-server.ts,
// bench/lib/minimal-streams-server.ts): the anchor for "what any server can reach on this host"
// (docs/benchmarks.md, issue 20). Only what a correct server must do: read the binary frame
// header (docs/protocol.md section 2), build the tensors, run, answer. No validation beyond what
// keeps it from misreading a well-formed request, no budgets, no metrics, no logs.
import { Worker } from 'node:worker_threads';
import ort from 'onnxruntime-node';
import { RAW_SESSION_OPTIONS } from './raw-ort.js';

export interface WireInput {
  name: string;
  shape: number[];
  datatype: string;
  parameters?: { binary_data_size?: number };
}

export interface Header {
  id?: string | number;
  model?: string;
  inputs?: WireInput[];
  /** The outputs asked for; one with `binary_data: false` is answered as JSON `data` (docs/protocol.md section 3). */
  outputs?: Array<{ name: string; parameters?: { binary_data?: boolean } }>;
  parameters?: Record<string, unknown>;
}

/** A tensor as it crosses a thread: the name, onnxruntime's type, dims and its own bytes. */
export interface Feed {
  name: string;
  type: 'float32' | 'int64';
  dims: number[];
  data: Float32Array | BigInt64Array;
}

const TYPES: Record<string, 'float32' | 'int64'> = { FP32: 'float32', INT64: 'int64' };
const DATATYPES: Record<string, string> = { float32: 'FP32', int64: 'INT64' };

/** Parses a WebSocket binary frame: [uint32 LE header length][JSON header][tensor bytes...]. */
export function parseWsFrame(data: Buffer): { header: Header; bytes: Buffer } {
  const n = data.readUInt32LE(0);
  return { header: JSON.parse(data.toString('utf8', 4, 4 + n)) as Header, bytes: data.subarray(4 + n) };
}

/**
 * The header's inputs over the bytes after it. `copy`: each tensor gets its own buffer (it is
 * about to be moved to another thread); otherwise an aligned tensor is a view of the frame.
 */
export function readFeeds(header: Header, bytes: Buffer, copy: boolean): Feed[] {
  let at = 0;
  return (header.inputs ?? []).map((t) => {
    const type = TYPES[t.datatype];
    const size = t.parameters?.binary_data_size;
    if (!type || size === undefined || at + size > bytes.length) throw new Error(`input ${t.name}: unsupported or short`);
    const width = type === 'float32' ? 4 : 8;
    const start = bytes.byteOffset + at;
    at += size;
    const buffer = !copy && start % width === 0 ? bytes.buffer as ArrayBuffer : bytes.buffer.slice(start, start + size) as ArrayBuffer;
    const offset = buffer === bytes.buffer ? start : 0;
    const data = type === 'float32' ? new Float32Array(buffer, offset, size / 4) : new BigInt64Array(buffer, offset, size / 8);
    return { name: t.name, type, dims: t.shape, data };
  });
}

export function toOrt(feeds: readonly Feed[]): Record<string, ort.Tensor> {
  const out: Record<string, ort.Tensor> = {};
  for (const f of feeds) out[f.name] = new ort.Tensor(f.type, f.data, f.dims);
  return out;
}

export function fromOrt(results: ort.InferenceSession.ReturnType): Feed[] {
  return Object.entries(results).map(([name, t]) => ({ name, type: t.type as Feed['type'], dims: [...t.dims], data: t.data as Feed['data'] }));
}

/** The outputs a request asked for as JSON (`binary_data: false`); the others go as bytes. */
export const jsonOutputs = (header: Header): ReadonlySet<string> =>
  new Set((header.outputs ?? []).filter((o) => o.parameters?.binary_data === false).map((o) => o.name));

const NONE: ReadonlySet<string> = new Set();

/** The answer's JSON: OIP outputs with binary_data_size, the bytes following in order, or their `data` for those in `asJson`. */
export function outputsHeader(outputs: readonly Feed[], asJson: ReadonlySet<string> = NONE): Array<Record<string, unknown>> {
  return outputs.map((o) => asJson.has(o.name)
    ? { name: o.name, datatype: DATATYPES[o.type], shape: o.dims, data: Array.from(o.data, Number) }
    : { name: o.name, datatype: DATATYPES[o.type], shape: o.dims, parameters: { binary_data_size: o.data.byteLength } });
}

/** [uint32 LE header length][header JSON][output bytes...] in one buffer; the outputs in `asJson` are in the JSON instead. */
export function wsAnswer(id: unknown, model: string, outputs: readonly Feed[], asJson: ReadonlySet<string> = NONE): Buffer {
  const json = JSON.stringify({ id, ok: true, result: { model_name: model, model_version: '1', outputs: outputsHeader(outputs, asJson) } });
  return frameWith(json, asJson.size ? outputs.filter((o) => !asJson.has(o.name)) : outputs, 4);
}

/** HTTP binary answer body and its header length (Inference-Header-Content-Length). */
export function httpAnswer(model: string, outputs: readonly Feed[]): { body: Buffer; headerLength: number } {
  const json = JSON.stringify({ model_name: model, model_version: '1', outputs: outputsHeader(outputs) });
  const body = frameWith(json, outputs, 0);
  return { body, headerLength: Buffer.byteLength(json) };
}

function frameWith(json: string, outputs: readonly Feed[], prefix: number): Buffer {
  const jsonBytes = Buffer.byteLength(json);
  let size = prefix + jsonBytes;
  for (const o of outputs) size += o.data.byteLength;
  const out = Buffer.allocUnsafe(size);
  if (prefix) out.writeUInt32LE(jsonBytes, 0);
  out.write(json, prefix);
  let at = prefix + jsonBytes;
  for (const o of outputs) {
    out.set(new Uint8Array(o.data.buffer, o.data.byteOffset, o.data.byteLength), at);
    at += o.data.byteLength;
  }
  return out;
}

/** The buffers a Feed[] can give away when posted (each its own, whole). */
export function transferables(feeds: readonly Feed[]): ArrayBuffer[] {
  const out: ArrayBuffer[] = [];
  for (const f of feeds) {
    const b = f.data.buffer;
    if (b instanceof ArrayBuffer && f.data.byteOffset === 0 && f.data.byteLength === b.byteLength && !out.includes(b)) out.push(b);
  }
  return out;
}

/** A worker thread holding one onnxruntime session (bench/lib/minimal-session-worker.ts). */
export class SessionThread {
  private readonly worker: Worker;
  private readonly waiting = new Map<number, (outputs: Feed[]) => void>();
  private next = 0;
  busy = 0;

  private constructor(worker: Worker) {
    this.worker = worker;
    worker.on('message', (m: { n: number; outputs: Feed[] }) => {
      const done = this.waiting.get(m.n);
      this.waiting.delete(m.n);
      this.busy--;
      done?.(m.outputs);
    });
    worker.unref();
  }

  static async open(modelFile: string): Promise<SessionThread> {
    const worker = new Worker(new URL('./minimal-session-worker.js', import.meta.url), { workerData: { modelFile } });
    await new Promise<void>((resolve, reject) => {
      worker.once('message', () => resolve());
      worker.once('error', reject);
    });
    return new SessionThread(worker);
  }

  run(feeds: Feed[], done: (outputs: Feed[]) => void): void {
    const n = this.next++;
    this.busy++;
    this.waiting.set(n, done);
    this.worker.postMessage({ n, feeds }, transferables(feeds));
  }
}

export const openSession = (modelFile: string): Promise<ort.InferenceSession> => ort.InferenceSession.create(modelFile, RAW_SESSION_OPTIONS);
