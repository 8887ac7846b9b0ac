// WebSocket frames: text = one JSON message; binary = [uint32 LE header length][JSON header]
// [tensor bytes...] (docs/protocol.md section 2).
import { PerchError } from '../../base/errors.js';
import { JSON_EXPANSION } from '../client-budget.js';
import { parseJson } from '../decode-request.js';

export interface ParsedFrame {
  message: unknown;
  binary: Uint8Array;
  /** The message's id if one can be read, so even a refused message gets a matching answer. */
  id: MessageId | null;
}

export function parseFrame(data: Buffer, isBinary: boolean): ParsedFrame {
  if (!isBinary) {
    const message = parseJson(data);
    return { message, binary: new Uint8Array(0), id: readId(message) };
  }
  if (data.length < 4) throw new PerchError('PERCH_ERR_BINARY_SIZE', 'binary frame shorter than its 4-byte header length');
  const headerLength = data.readUInt32LE(0);
  if (headerLength > data.length - 4) {
    throw new PerchError('PERCH_ERR_BINARY_SIZE', `header length ${headerLength} is past the end of a ${data.length}-byte frame`);
  }
  // The header's text read from the frame by offsets: a subarray would be one more Buffer per frame (issue 20).
  const message = parseJson(data.toString('utf8', 4, 4 + headerLength));
  return { message, binary: data.subarray(4 + headerLength), id: readId(message) };
}

/** A client's message id: a string, or a number as JSON-RPC clients send (echoed as sent). */
export type MessageId = string | number;

export function readId(message: unknown): MessageId | null {
  if (typeof message === 'object' && message !== null && 'id' in message) {
    const id = (message as { id: unknown }).id;
    if (typeof id === 'string' || (typeof id === 'number' && Number.isFinite(id))) return id;
  }
  return null;
}

/** [uint32 LE header length][header JSON text][chunks...] */
export function binaryFrameOf(json: string, chunks: readonly Uint8Array[]): Buffer {
  // One buffer, the JSON written straight into it: no intermediate copies per answer.
  const jsonBytes = Buffer.byteLength(json);
  let size = 4 + jsonBytes;
  for (const c of chunks) size += c.byteLength;
  const out = Buffer.allocUnsafe(size);
  out.writeUInt32LE(jsonBytes, 0);
  out.write(json, 4);
  let at = 4 + jsonBytes;
  for (const c of chunks) {
    out.set(c, at);
    at += c.byteLength;
  }
  return out;
}

/** Refused frames up to this size are parsed for their id, so the refusal matches the request. */
const ID_PARSE_LIMIT = 1024 * 1024;
/** A larger one: its id is looked for in its first bytes (clients put it first, as docs/api.md shows). */
const ID_SCAN_BYTES = 4096;
const ID_PATTERN = /^\s*\{\s*"id"\s*:\s*(?:"((?:[^"\\]|\\.)*)"|(-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)\s*[,}])/;

/** The id of a frame refused for load, read as cheaply as its size allows; null when unreadable. */
export function refusedFrameId(data: Buffer, isBinary: boolean): MessageId | null {
  try {
    if (data.length <= ID_PARSE_LIMIT) return parseFrame(data, isBinary).id;
    const m = ID_PATTERN.exec(data.toString('utf8', isBinary ? 4 : 0, ID_SCAN_BYTES));
    if (m?.[1] !== undefined) return JSON.parse(`"${m[1]}"`) as string;
    if (m?.[2] !== undefined && Number.isFinite(Number(m[2]))) return Number(m[2]);
  } catch {
    // not readable: the refusal goes out with id null
  }
  return null;
}

/** What handling a frame holds: its bytes, and the parse cost of its JSON (client-budget.ts). */
export function frameCost(data: Buffer, isBinary: boolean): number {
  if (!isBinary) return data.length * JSON_EXPANSION;
  const header = data.length >= 4 ? Math.min(data.readUInt32LE(0), data.length - 4) : 0;
  return data.length + header * (JSON_EXPANSION - 1);
}
