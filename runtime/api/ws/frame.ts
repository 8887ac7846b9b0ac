// WebSocket frames: text = one JSON message; binary = [uint32 LE header length][JSON header]
// [tensor bytes...] (docs/protocol.md section 2).
import { PerchError } from '../../base/errors.js';
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
  const message = parseJson(data.subarray(4, 4 + headerLength));
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

/** [uint32 LE header length][header JSON][chunks...] */
export function binaryFrame(header: unknown, chunks: readonly Uint8Array[]): Buffer {
  // One buffer, the JSON written straight into it: no intermediate copies per answer.
  const json = JSON.stringify(header);
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
