// OIP (KServe v2) JSON tensors: `data` is a flat (or nested) row-major array. Values are checked
// here, once, so a wrong element type is a clear PERCH_ERR_TENSOR_DATA and never reaches ORT.
// BYTES elements are JSON strings: their UTF-8 bytes, or, when the tensor's parameters say
// `"content_type": "base64"` (the convention of MLServer's OIP codecs), the bytes they encode in
// base64 (docs/api.md, BYTES). That is how arbitrary bytes (an encoded image) travel in JSON.
import { PerchError } from '../base/errors.js';
import { allocate, type BytesData, type Datatype, type NumericArray, type TensorData } from './datatypes.js';
import { fromHalfBits, toHalfBits } from './fp16.js';
import { NumberRun } from './json-number-run.js';
import { elementCount, type Tensor } from './tensor.js';

const INT_RANGE: Partial<Record<Datatype, [number, number]>> = {
  UINT8: [0, 0xff], UINT16: [0, 0xffff], UINT32: [0, 0xffffffff],
  INT8: [-0x80, 0x7f], INT16: [-0x8000, 0x7fff], INT32: [-0x80000000, 0x7fffffff],
};

/**
 * OIP allows nested arrays; most clients send flat ones, so only flatten when needed. Nesting
 * deeper than the tensor's rank is refused: it is never valid, and flat(Infinity) on a hostile
 * million-deep array would overflow the stack.
 */
function flatten(name: string, data: unknown[], rank: number): unknown[] {
  if (!hasArray(data)) return data;
  const out: unknown[] = [];
  const stack: Array<{ items: unknown[]; at: number }> = [{ items: data, at: 0 }];
  while (stack.length) {
    const top = stack[stack.length - 1] as { items: unknown[]; at: number };
    if (top.at === top.items.length) {
      stack.pop();
      continue;
    }
    const v = top.items[top.at++];
    if (!Array.isArray(v)) out.push(v);
    else if (stack.length >= Math.max(rank, 1)) throw bad(name, `data is nested deeper than the tensor's ${rank} axes`);
    else stack.push({ items: v, at: 0 });
  }
  return out;
}

/**
 * Whether an element is itself an array. A plain loop, not some(Array.isArray): where the call sees
 * arrays of more than one elements kind (a chunk's float samples and its integer rate) it was not
 * inlined, and the builtin boxed every double it handed the callback: 16 B an element
 * (docs/benchmarks.md, "A chunk sent as JSON").
 */
function hasArray(data: unknown[]): boolean {
  for (let i = 0; i < data.length; i++) if (Array.isArray(data[i])) return true;
  return false;
}

function bad(name: string, what: string): PerchError {
  return new PerchError('PERCH_ERR_TENSOR_DATA', `tensor '${name}': ${what}`);
}

/** The content types a JSON BYTES tensor may declare in `parameters.content_type`. */
export const BYTES_CONTENT_TYPES = ['str', 'base64'] as const;
export type BytesContentType = (typeof BYTES_CONTENT_TYPES)[number];

// Standard base64 with its padding (RFC 4648 section 4); Buffer.from(s, 'base64') alone would
// skip any character it does not know, so a mangled image would decode to other bytes.
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

function fromBase64(name: string, i: number, v: string): Uint8Array {
  if (!BASE64.test(v)) throw bad(name, `element ${i} is not base64 (content_type base64)`);
  return Buffer.from(v, 'base64');
}

/**
 * Reads `data` of a JSON tensor into Perch's in-memory form, checking count and element types.
 * `bytesAs`: how BYTES elements are written (UTF-8 text, or base64). `raw` may be a NumberRun:
 * a large array of numbers still in the body's bytes (json-number-run.ts), checked the same way.
 */
export function decodeJsonData(name: string, datatype: Datatype, shape: number[], raw: unknown, bytesAs: BytesContentType = 'str'): TensorData {
  if (raw instanceof NumberRun) return decodeNumberRun(name, datatype, shape, raw);
  if (!Array.isArray(raw)) throw bad(name, '`data` must be an array');
  const values = flatten(name, raw, shape.length);
  const count = elementCount(shape);
  if (values.length !== count) {
    throw bad(name, `shape ${JSON.stringify(shape)} needs ${count} elements, data has ${values.length}`);
  }
  const out = allocate(datatype, count);
  if (datatype === 'BYTES') {
    const elements = out as BytesData;
    for (let i = 0; i < count; i++) {
      const v = values[i];
      if (typeof v !== 'string') throw bad(name, `element ${i} must be a string`);
      elements[i] = bytesAs === 'base64' ? fromBase64(name, i, v) : Buffer.from(v, 'utf8');
    }
    return elements;
  }
  writeElements(name, datatype, values, out as NumericArray);
  return out;
}

/** decodeJsonData for a NumberRun: the same checks, in the same order, with the same words. */
function decodeNumberRun(name: string, datatype: Datatype, shape: number[], run: NumberRun): TensorData {
  if (run.depth > Math.max(shape.length, 1)) throw bad(name, `data is nested deeper than the tensor's ${shape.length} axes`);
  const count = elementCount(shape);
  if (run.count !== count) throw bad(name, `shape ${JSON.stringify(shape)} needs ${count} elements, data has ${run.count}`);
  const out = allocate(datatype, count);
  if (datatype === 'BYTES') {
    if (count > 0) throw bad(name, 'element 0 must be a string');
    return out;
  }
  run.forEach(elementWriter(name, datatype, out as NumericArray));
  return out;
}

/**
 * Checks the elements of a JSON tensor of a numeric (or BOOL) datatype and writes them into `out`:
 * a loop per datatype, no call per element. Through elementWriter's closure, a call site that
 * sees more than one datatype (a VAD chunk's FP32 samples and its INT64 rate) was not inlined,
 * and each double it passed was boxed on the heap: 16 B an element (docs/benchmarks.md, "A chunk
 * sent as JSON").
 */
function writeElements(name: string, datatype: Exclude<Datatype, 'BYTES'>, values: unknown[], out: NumericArray): void {
  const count = values.length;
  switch (datatype) {
    case 'BOOL': {
      const u8 = out as Uint8Array;
      for (let i = 0; i < count; i++) {
        const v = values[i];
        if (v === true || v === 1) u8[i] = 1;
        else if (v !== false && v !== 0) throw notBoolean(name, i);
      }
      return;
    }
    case 'INT64':
    case 'UINT64': {
      const big = out as BigInt64Array | BigUint64Array;
      for (let i = 0; i < count; i++) big[i] = toBigInt(name, datatype, values[i], i);
      return;
    }
    case 'FP16': {
      const u16 = out as Uint16Array;
      for (let i = 0; i < count; i++) {
        const v = values[i];
        if (typeof v !== 'number') throw notNumber(name, i);
        u16[i] = toHalfBits(v);
      }
      return;
    }
    case 'FP32':
    case 'FP64': {
      const f = out as Float32Array | Float64Array;
      for (let i = 0; i < count; i++) {
        const v = values[i];
        if (typeof v !== 'number') throw notNumber(name, i);
        f[i] = v;
      }
      return;
    }
    default: {
      const [min, max] = INT_RANGE[datatype] as [number, number];
      const ints = out as Int32Array;
      for (let i = 0; i < count; i++) {
        const v = values[i];
        if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) throw notInRange(name, datatype, i);
        ints[i] = v;
      }
    }
  }
}

/**
 * writeElements for a NumberRun, whose numbers come one at a time (NumberRun.forEach): the same
 * checks with the same words.
 */
function elementWriter(name: string, datatype: Exclude<Datatype, 'BYTES'>, out: NumericArray): (v: unknown, i: number) => void {
  switch (datatype) {
    case 'BOOL': {
      const u8 = out as Uint8Array;
      return (v, i) => {
        if (v === true || v === 1) u8[i] = 1;
        else if (v !== false && v !== 0) throw notBoolean(name, i);
      };
    }
    case 'INT64':
    case 'UINT64': {
      const big = out as BigInt64Array | BigUint64Array;
      return (v, i) => {
        big[i] = toBigInt(name, datatype, v, i);
      };
    }
    case 'FP16': {
      const u16 = out as Uint16Array;
      return (v, i) => {
        if (typeof v !== 'number') throw notNumber(name, i);
        u16[i] = toHalfBits(v);
      };
    }
    case 'FP32':
    case 'FP64': {
      const f = out as Float32Array | Float64Array;
      return (v, i) => {
        if (typeof v !== 'number') throw notNumber(name, i);
        f[i] = v;
      };
    }
    default: {
      const [min, max] = INT_RANGE[datatype] as [number, number];
      const ints = out as Int32Array;
      return (v, i) => {
        if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) throw notInRange(name, datatype, i);
        ints[i] = v;
      };
    }
  }
}

const BIG_RANGE = { INT64: [-(2n ** 63n), 2n ** 63n - 1n], UINT64: [0n, 2n ** 64n - 1n] } as const;

/**
 * Element `i` of an INT64 or UINT64 tensor: an integer number up to 2^53 - 1 in size, or a string
 * of digits (exact beyond). A JSON number past that is refused (docs/api.md): JSON.parse has
 * already rounded it to a double, so 9007199254740993 became ...992, a wrong value given as right.
 */
function toBigInt(name: string, datatype: 'INT64' | 'UINT64', v: unknown, i: number): bigint {
  let b: bigint;
  if (typeof v === 'number' && Number.isSafeInteger(v)) b = BigInt(v);
  else if (typeof v === 'number' && Number.isInteger(v)) throw bad(name, `element ${i} is past 2^53 as a JSON number, which cannot hold it exactly: send it as a decimal string`);
  else if (typeof v === 'string' && /^-?\d+$/.test(v)) b = BigInt(v);
  else throw bad(name, `element ${i} must be an integer`);
  const range = BIG_RANGE[datatype];
  if (b < range[0] || b > range[1]) throw bad(name, `element ${i} is out of range for ${datatype}`);
  return b;
}

function notBoolean(name: string, i: number): PerchError {
  return bad(name, `element ${i} must be a boolean`);
}

function notNumber(name: string, i: number): PerchError {
  return bad(name, `element ${i} must be a number`);
}

function notInRange(name: string, datatype: Datatype, i: number): PerchError {
  const [min, max] = INT_RANGE[datatype] as [number, number];
  return bad(name, `element ${i} must be an integer in [${min}, ${max}] for ${datatype}`);
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * How a BYTES tensor goes into JSON: as text when every element is UTF-8, else every element in
 * base64 (and the tensor then says `"content_type": "base64"` in its parameters).
 */
export function jsonBytesForm(data: BytesData): BytesContentType {
  try {
    for (const e of data) utf8.decode(e);
    return 'str';
  } catch {
    return 'base64';
  }
}

/** A tensor's data as a JSON-ready flat array (BYTES: as `bytesAs` says). */
export function encodeJsonData(t: Tensor, bytesAs: BytesContentType = 'str'): unknown[] {
  const d = t.data;
  if (Array.isArray(d)) return d.map((e) => Buffer.from(e.buffer, e.byteOffset, e.byteLength).toString(bytesAs === 'base64' ? 'base64' : 'utf8'));
  switch (t.datatype) {
    case 'BOOL':
      return Array.from(d as Uint8Array, (v) => v !== 0);
    case 'FP16':
      return Array.from(d as Uint16Array, fromHalfBits);
    case 'INT64':
    case 'UINT64':
      // JSON numbers; values past 2^53 lose precision, as in every OIP JSON server.
      return Array.from(d as BigInt64Array, Number);
    default:
      return Array.from(d as Float32Array);
  }
}
