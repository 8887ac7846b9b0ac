import type { ServerResponse } from 'node:http';
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
  sendJson(res, e.status, { error: e.message, code: e.code });
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
