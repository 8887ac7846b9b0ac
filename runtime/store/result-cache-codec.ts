// A compact binary form of Tensor[] for the result cache (own format, not the OIP JSON: a hit must
// decode in microseconds). Layout, all integers little-endian:
//   magic "PRC" | format 1 (u8) | endianness 1=LE (u8) | tensor count (u32)
//   per tensor: name length (u16) | name UTF-8 | datatype index in DATATYPES (u8) | rank (u8) |
//               dims (u32 each) | numeric: byte length (u32) + raw element bytes
//                               | BYTES: element count (u32) + per element length (u32) + bytes
// Raw element bytes are the typed array's own (platform order); the endianness byte makes a file
// moved to a big-endian machine read as a miss instead of garbage.
import { endianness } from 'node:os';
import { arrayConstructor, DATATYPES, elementSize, type Datatype } from '../tensor/datatypes.js';
import type { Tensor } from '../tensor/tensor.js';
import { elementCount } from '../tensor/tensor.js';

const MAGIC = [0x50, 0x52, 0x43]; // "PRC"
const FORMAT = 1;
const LE = endianness() === 'LE' ? 1 : 2;
const HEADER = 3 + 1 + 1 + 4;

export function encodeTensors(tensors: readonly Tensor[]): Buffer {
  const names = tensors.map((t) => Buffer.from(t.name, 'utf8'));
  const strings = tensors.map((t) => (Array.isArray(t.data) ? t.data : null));
  let size = HEADER;
  tensors.forEach((t, i) => {
    size += 2 + (names[i] as Buffer).length + 1 + 1 + 4 * t.shape.length + 4;
    const strs = strings[i];
    if (strs) for (const s of strs) size += 4 + s.byteLength;
    else size += (t.data as Exclude<Tensor['data'], Uint8Array[]>).byteLength;
  });
  const out = Buffer.allocUnsafe(size);
  let o = 0;
  for (const m of MAGIC) out[o++] = m;
  out[o++] = FORMAT;
  out[o++] = LE;
  o = out.writeUInt32LE(tensors.length, o);
  tensors.forEach((t, i) => {
    const name = names[i] as Buffer;
    if (name.length > 0xffff) throw new RangeError(`tensor name too long: ${name.length} bytes`);
    if (t.shape.length > 0xff) throw new RangeError(`tensor rank too large: ${t.shape.length}`);
    o = out.writeUInt16LE(name.length, o);
    o += name.copy(out, o);
    out[o++] = DATATYPES.indexOf(t.datatype);
    out[o++] = t.shape.length;
    for (const d of t.shape) o = out.writeUInt32LE(d, o);
    const strs = strings[i];
    if (strs) {
      o = out.writeUInt32LE(strs.length, o);
      for (const s of strs) {
        o = out.writeUInt32LE(s.byteLength, o);
        out.set(s, o);
        o += s.byteLength;
      }
    } else {
      const data = t.data as Exclude<Tensor['data'], Uint8Array[]>;
      o = out.writeUInt32LE(data.byteLength, o);
      out.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), o);
      o += data.byteLength;
    }
  });
  return out;
}

export class CodecError extends Error {
  override readonly name = 'CodecError';
}

/** Decodes what encodeTensors wrote; throws CodecError for anything else (the cache then treats it as a miss). */
export function decodeTensors(buf: Uint8Array): Tensor[] {
  const b = Buffer.isBuffer(buf) ? buf : Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  let o = 0;
  const need = (n: number): void => {
    if (o + n > b.length) throw new CodecError(`truncated at byte ${o}`);
  };
  need(HEADER);
  if (b[0] !== MAGIC[0] || b[1] !== MAGIC[1] || b[2] !== MAGIC[2]) throw new CodecError('bad magic');
  if (b[3] !== FORMAT) throw new CodecError(`unknown format ${String(b[3])}`);
  if (b[4] !== LE) throw new CodecError('written on a machine of other endianness');
  o = 5;
  const count = b.readUInt32LE(o);
  o += 4;
  const out: Tensor[] = [];
  for (let i = 0; i < count; i++) {
    need(2);
    const nameLen = b.readUInt16LE(o);
    o += 2;
    need(nameLen + 2);
    const name = b.toString('utf8', o, o + nameLen);
    o += nameLen;
    const datatype = DATATYPES[b[o++] as number] as Datatype | undefined;
    if (!datatype) throw new CodecError('unknown datatype');
    const rank = b[o++] as number;
    need(4 * rank + 4);
    const shape: number[] = [];
    for (let r = 0; r < rank; r++, o += 4) shape.push(b.readUInt32LE(o));
    const n = b.readUInt32LE(o);
    o += 4;
    const ctor = arrayConstructor(datatype);
    if (!ctor) {
      if (n !== elementCount(shape)) throw new CodecError(`${name}: ${n} strings for shape [${shape.join(',')}]`);
      const data: Uint8Array[] = new Array<Uint8Array>(n);
      for (let k = 0; k < n; k++) {
        need(4);
        const len = b.readUInt32LE(o);
        o += 4;
        need(len);
        data[k] = Uint8Array.prototype.slice.call(b, o, o + len); // a copy: the caller owns the result
        o += len;
      }
      out.push({ name, datatype, shape, data });
    } else {
      if (n !== elementCount(shape) * elementSize(datatype)) throw new CodecError(`${name}: ${n} bytes for shape [${shape.join(',')}]`);
      need(n);
      const data = new ctor(n / ctor.BYTES_PER_ELEMENT);
      // A copy into a fresh, aligned buffer: the blob may sit at any offset, the caller owns the result.
      new Uint8Array(data.buffer, data.byteOffset, n).set(b.subarray(o, o + n));
      o += n;
      out.push({ name, datatype, shape, data });
    }
  }
  if (o !== b.length) throw new CodecError(`${b.length - o} trailing bytes`);
  return out;
}
