// Open Inference Protocol datatypes and how each is held in memory and handed to onnxruntime.
// FP16 travels as raw IEEE half bits in a Uint16Array (what onnxruntime-node accepts for
// 'float16'); BOOL as one byte per element; BYTES as one Uint8Array per element: OIP BYTES
// elements are arbitrary bytes (an encoded image, a WAV file), text only when a model says so
// (an ONNX 'string' tensor: runtime/sessions/ort-session.ts checks those are UTF-8).

export const DATATYPES = [
  'BOOL', 'UINT8', 'UINT16', 'UINT32', 'UINT64', 'INT8', 'INT16', 'INT32', 'INT64',
  'FP16', 'FP32', 'FP64', 'BYTES',
] as const;
export type Datatype = (typeof DATATYPES)[number];

export type NumericArray =
  | Float32Array | Float64Array | Int8Array | Uint8Array | Int16Array | Uint16Array
  | Int32Array | Uint32Array | BigInt64Array | BigUint64Array;
/** BYTES data: one Uint8Array per element. */
export type BytesData = Uint8Array[];
export type TensorData = NumericArray | BytesData;

interface NumericArrayConstructor {
  new (length: number): NumericArray;
  new (buffer: ArrayBufferLike, byteOffset?: number, length?: number): NumericArray;
  readonly BYTES_PER_ELEMENT: number;
}

interface DatatypeInfo {
  /** onnxruntime-node's name for the element type. */
  ort: string;
  /** Typed array that holds it; null for BYTES (held as Uint8Array[]). */
  array: NumericArrayConstructor | null;
  /** Bytes per element on the wire; 0 for BYTES (length-prefixed). */
  size: number;
}

const INFO: Record<Datatype, DatatypeInfo> = {
  BOOL: { ort: 'bool', array: Uint8Array, size: 1 },
  UINT8: { ort: 'uint8', array: Uint8Array, size: 1 },
  UINT16: { ort: 'uint16', array: Uint16Array, size: 2 },
  UINT32: { ort: 'uint32', array: Uint32Array, size: 4 },
  UINT64: { ort: 'uint64', array: BigUint64Array, size: 8 },
  INT8: { ort: 'int8', array: Int8Array, size: 1 },
  INT16: { ort: 'int16', array: Int16Array, size: 2 },
  INT32: { ort: 'int32', array: Int32Array, size: 4 },
  INT64: { ort: 'int64', array: BigInt64Array, size: 8 },
  FP16: { ort: 'float16', array: Uint16Array, size: 2 },
  FP32: { ort: 'float32', array: Float32Array, size: 4 },
  FP64: { ort: 'float64', array: Float64Array, size: 8 },
  BYTES: { ort: 'string', array: null, size: 0 },
};

const FROM_ORT = new Map<string, Datatype>(
  (Object.entries(INFO) as [Datatype, DatatypeInfo][])
    .filter(([dt]) => dt !== 'UINT8') // 'bool' and 'uint8' share Uint8Array; map back by ort name
    .map(([dt, info]) => [info.ort, dt]),
);
FROM_ORT.set('uint8', 'UINT8');

export function ortType(dt: Datatype): string {
  return INFO[dt].ort;
}

export function datatypeFromOrt(ort: string): Datatype | undefined {
  return FROM_ORT.get(ort);
}

export function elementSize(dt: Datatype): number {
  return INFO[dt].size;
}

export function arrayConstructor(dt: Datatype): NumericArrayConstructor | null {
  return INFO[dt].array;
}

const EMPTY = new Uint8Array(0);

/** A zero-filled array of `count` elements of `dt`. */
export function allocate(dt: Datatype, count: number): TensorData {
  const ctor = INFO[dt].array;
  return ctor ? new ctor(count) : new Array<Uint8Array>(count).fill(EMPTY);
}
