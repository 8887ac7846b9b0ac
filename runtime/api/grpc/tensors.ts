// ModelInferRequest tensors -> Perch tensors, and results -> ModelInferResponse (OIP gRPC:
// typed `contents` or `raw_input_contents`, never both; answers in `raw_output_contents`, as
// Triton answers, which is what its clients read). Everything from the wire is checked here:
// names, datatypes, shapes, element counts and value ranges.
import { PerchError } from '../../base/errors.js';
import type { InferResult, RequestedOutput } from '../../inference/infer-service.js';
import { decodeBinaryData, encodeBinaryData } from '../../tensor/binary-codec.js';
import { arrayConstructor, DATATYPES, type Datatype, type TensorData } from '../../tensor/datatypes.js';
import { elementCount, type Tensor } from '../../tensor/tensor.js';
import type { InferInputTensorMsg, ModelInferRequestMsg, ModelInferResponseMsg, TensorContentsMsg } from './messages.js';
import { toParameterMap } from './parameters.js';

function invalid(message: string): PerchError {
  return new PerchError('PERCH_ERR_INVALID_MESSAGE', message);
}

function datatypeOf(t: InferInputTensorMsg): Datatype {
  if (!(DATATYPES as readonly string[]).includes(t.datatype)) {
    throw invalid(`input '${t.name}': datatype '${t.datatype}' is not one of ${DATATYPES.join(', ')}`);
  }
  return t.datatype as Datatype;
}

function shapeOf(t: InferInputTensorMsg): number[] {
  return t.shape.map((s) => {
    const n = Number(s);
    if (!Number.isSafeInteger(n) || n < 0) throw invalid(`input '${t.name}': shape ${JSON.stringify(t.shape)} holds '${s}', not a size`);
    return n;
  });
}

/** The typed field that carries a datatype (inference.proto InferTensorContents). */
const FIELD: Record<Datatype, keyof TensorContentsMsg | null> = {
  BOOL: 'bool_contents',
  INT8: 'int_contents', INT16: 'int_contents', INT32: 'int_contents',
  INT64: 'int64_contents',
  UINT8: 'uint_contents', UINT16: 'uint_contents', UINT32: 'uint_contents',
  UINT64: 'uint64_contents',
  FP16: null, // OIP: FP16 has no typed field; raw contents only
  FP32: 'fp32_contents',
  FP64: 'fp64_contents',
  BYTES: 'bytes_contents',
};

/** Value range of the narrow integer types carried in the 32-bit fields. */
const RANGE: Partial<Record<Datatype, [number, number]>> = {
  INT8: [-128, 127], INT16: [-32768, 32767], UINT8: [0, 255], UINT16: [0, 65535],
};

function typedData(name: string, dt: Datatype, shape: number[], contents: TensorContentsMsg): TensorData {
  const field = FIELD[dt];
  if (field === null) throw invalid(`input '${name}': ${dt} has no typed contents field; send it in raw_input_contents`);
  for (const other of Object.keys(FIELD_SET) as Array<keyof TensorContentsMsg>) {
    if (other !== field && contents[other].length > 0) throw invalid(`input '${name}': ${dt} data goes in contents.${field}, not contents.${other}`);
  }
  const values = contents[field];
  const count = elementCount(shape);
  if (values.length !== count) {
    throw new PerchError('PERCH_ERR_TENSOR_DATA', `input '${name}': shape ${JSON.stringify(shape)} needs ${count} elements, contents.${field} holds ${values.length}`);
  }
  if (dt === 'BYTES') {
    // Through the binary codec, so BYTES elements are held exactly as over HTTP and WebSocket.
    const parts = values as Buffer[];
    const raw = Buffer.allocUnsafe(parts.reduce((n, p) => n + 4 + p.length, 0));
    let at = 0;
    for (const p of parts) {
      raw.writeUInt32LE(p.length, at);
      p.copy(raw, at + 4);
      at += 4 + p.length;
    }
    return decodeBinaryData(name, dt, shape, raw);
  }
  if (dt === 'BOOL') return Uint8Array.from(values as boolean[], (b) => (b ? 1 : 0));
  if (dt === 'INT64') return BigInt64Array.from(values as string[], (s) => BigInt(s));
  if (dt === 'UINT64') return BigUint64Array.from(values as string[], (s) => BigInt(s));
  const range = RANGE[dt];
  if (range) {
    for (const v of values as number[]) {
      if (v < range[0] || v > range[1]) throw new PerchError('PERCH_ERR_TENSOR_DATA', `input '${name}': ${v} is out of range for ${dt}`);
    }
  }
  const ctor = arrayConstructor(dt);
  if (!ctor) throw new PerchError('PERCH_ERR_INTERNAL', `no array type for ${dt}`);
  const out = new ctor(count) as Float32Array; // any numeric array of number elements
  out.set(values as number[]);
  return out as unknown as TensorData;
}

const FIELD_SET: Record<keyof TensorContentsMsg, true> = {
  bool_contents: true, int_contents: true, int64_contents: true, uint_contents: true,
  uint64_contents: true, fp32_contents: true, fp64_contents: true, bytes_contents: true,
};

export function decodeInputs(req: ModelInferRequestMsg): Tensor[] {
  const raw = req.raw_input_contents;
  if (raw.length > 0 && raw.length !== req.inputs.length) {
    throw new PerchError('PERCH_ERR_BINARY_SIZE', `raw_input_contents holds ${raw.length} entries for ${req.inputs.length} inputs (one per input, in order)`);
  }
  return req.inputs.map((t, i) => {
    if (t.name === '') throw invalid(`input ${i} has no name`);
    const datatype = datatypeOf(t);
    const shape = shapeOf(t);
    let data: TensorData;
    if (raw.length > 0) {
      if (t.contents !== null && Object.values(t.contents).some((v: unknown[]) => v.length > 0)) {
        throw invalid(`input '${t.name}': contents and raw_input_contents are both set (OIP: one or the other)`);
      }
      data = decodeBinaryData(t.name, datatype, shape, raw[i] as Buffer);
    } else {
      if (t.contents === null) throw invalid(`input '${t.name}' has neither contents nor raw_input_contents`);
      data = typedData(t.name, datatype, shape, t.contents);
    }
    return { name: t.name, datatype, shape, data };
  });
}

export function requestedOutputs(req: ModelInferRequestMsg): RequestedOutput[] | undefined {
  if (req.outputs.length === 0) return undefined;
  return req.outputs.map((o) => {
    if (o.name === '') throw invalid('a requested output has no name');
    return { name: o.name };
  });
}

export function encodeResponse(r: InferResult): ModelInferResponseMsg {
  const raw: Uint8Array[] = [];
  const outputs = r.outputs.map((t) => {
    raw.push(encodeBinaryData(t));
    return { name: t.name, datatype: t.datatype, shape: t.shape, parameters: {} };
  });
  return {
    model_name: r.model_name,
    model_version: r.model_version,
    id: r.id ?? '',
    parameters: toParameterMap(r.parameters),
    outputs,
    raw_output_contents: raw,
  };
}

/** Bytes an answer holds until it is written (counted against the client budget). */
export function responseBytes(m: ModelInferResponseMsg): number {
  let n = 256;
  for (const b of m.raw_output_contents) n += b.byteLength;
  return n;
}
