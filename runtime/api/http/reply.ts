import type { IncomingMessage, ServerResponse } from 'node:http';
import { toPerchError } from '../../base/errors.js';
import type { Hold } from '../client-budget.js';
import type { EncodedResult } from '../encode-response.js';

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

/** docs/protocol.md section 3: `{"error": message, "code": "PERCH_ERR_..."}` with the code's status. */
export function sendError(res: ServerResponse, err: unknown): void {
  const e = toPerchError(err);
  if (res.headersSent) {
    res.destroy();
    return;
  }
  // A body that stopped arriving is not waited for again to reach a next request (body.ts).
  if (bodyLeftUnread(res.req) || e.code === 'PERCH_ERR_BODY_TIMEOUT') res.setHeader('connection', 'close');
  sendJson(res, e.status, { error: e.message, code: e.code });
}

/** An error answered with more of its request's body than this unread closes the connection. */
export const KEEP_ALIVE_UNREAD_BODY_BYTES = 1024 * 1024;

/**
 * True when an error is answered before a body of more than KEEP_ALIVE_UNREAD_BODY_BYTES (or a
 * chunked one, of unknown size) was read. Kept alive, Node reads and discards the rest of such a
 * body at full speed to reach the next request: 60 clients refused 413 from their headers went on
 * sending 31 MiB bodies, and discarding them took the main loop from health checks for the whole
 * attack (docs/reliability.md, "Malformed HTTP"). Closed, the connection lingers (lingering-close.ts),
 * read a little at a time for 2 s. Go's net/http closes the same way past 256 KiB unread; below
 * the limit, discarding costs less than a new connection.
 */
export function bodyLeftUnread(req: IncomingMessage | undefined): boolean {
  if (req === undefined || req.complete) return false;
  if (req.headers['transfer-encoding'] !== undefined) return true;
  return Number(req.headers['content-length'] ?? 0) > KEEP_ALIVE_UNREAD_BODY_BYTES;
}

/**
 * A JSON response, or the JSON header plus binary tensors with Inference-Header-Content-Length.
 * Its bytes count against the client budget (`hold`) until the response closes.
 */
export function sendResult(res: ServerResponse, encoded: EncodedResult, hold: Hold): void {
  if (encoded.chunks.length === 0) {
    const text = JSON.stringify(encoded.header);
    hold.add(text.length);
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
    res.end(text);
    return;
  }
  const header = Buffer.from(JSON.stringify(encoded.header));
  const total = header.length + encoded.chunks.reduce((n, c) => n + c.byteLength, 0);
  hold.add(total);
  res.writeHead(200, {
    'content-type': 'application/octet-stream',
    'inference-header-content-length': header.length,
    'content-length': total,
  });
  res.write(header);
  for (const c of encoded.chunks) res.write(c);
  res.end();
}
