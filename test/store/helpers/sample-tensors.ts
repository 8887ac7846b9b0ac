// One tensor of every OIP datatype, with values that catch byte-order and width mistakes.
import type { Tensor } from '../../../runtime/tensor/tensor.js';

export function everyDatatype(): Tensor[] {
  return [
    { name: 'bool', datatype: 'BOOL', shape: [4], data: new Uint8Array([1, 0, 1, 1]) },
    { name: 'u8', datatype: 'UINT8', shape: [2, 2], data: new Uint8Array([0, 1, 254, 255]) },
    { name: 'u16', datatype: 'UINT16', shape: [3], data: new Uint16Array([0, 513, 65535]) },
    { name: 'u32', datatype: 'UINT32', shape: [2], data: new Uint32Array([1, 4294967295]) },
    { name: 'u64', datatype: 'UINT64', shape: [2], data: new BigUint64Array([0n, 18446744073709551615n]) },
    { name: 'i8', datatype: 'INT8', shape: [3], data: new Int8Array([-128, 0, 127]) },
    { name: 'i16', datatype: 'INT16', shape: [2], data: new Int16Array([-32768, 32767]) },
    { name: 'i32', datatype: 'INT32', shape: [2], data: new Int32Array([-2147483648, 2147483647]) },
    { name: 'i64', datatype: 'INT64', shape: [3], data: new BigInt64Array([-9223372036854775808n, 0n, 9223372036854775807n]) },
    // FP16 bits: 1.0, -2.0, +inf, a NaN payload.
    { name: 'f16', datatype: 'FP16', shape: [4], data: new Uint16Array([0x3c00, 0xc000, 0x7c00, 0x7e01]) },
    { name: 'f32', datatype: 'FP32', shape: [1, 3], data: new Float32Array([Math.PI, -0, Number.NaN]) },
    { name: 'f64', datatype: 'FP64', shape: [2], data: new Float64Array([Number.MIN_VALUE, -Infinity]) },
    { name: 'bytes', datatype: 'BYTES', shape: [4], data: ['', 'héllo', '猫\u0000🐟'].map((t) => Buffer.from(t)).concat(Buffer.from([0xff, 0x00, 0xfe])) },
    { name: 'empty', datatype: 'FP32', shape: [0, 5], data: new Float32Array(0) },
    { name: 'scalar', datatype: 'INT32', shape: [], data: new Int32Array([42]) },
  ];
}

/** Byte-exact comparison (NaN payloads and -0 included), for round-trip tests. */
export function sameTensor(a: Tensor, b: Tensor): boolean {
  if (a.name !== b.name || a.datatype !== b.datatype || a.shape.join(',') !== b.shape.join(',')) return false;
  if (Array.isArray(a.data) || Array.isArray(b.data)) {
    return Array.isArray(a.data) && Array.isArray(b.data) && a.data.length === b.data.length && a.data.every((s, i) => Buffer.compare(s, (b.data as Uint8Array[])[i] as Uint8Array) === 0);
  }
  if (a.data.constructor !== b.data.constructor) return false;
  const x = Buffer.from(a.data.buffer, a.data.byteOffset, a.data.byteLength);
  const y = Buffer.from(b.data.buffer, b.data.byteOffset, b.data.byteLength);
  return x.equals(y);
}
