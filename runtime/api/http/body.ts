import type { IncomingMessage } from 'node:http';
import { PerchError } from '../../errors.js';

/** Reads a request body, refusing it as soon as it passes `limit` bytes. */
export function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) {
    return Promise.reject(new PerchError('PERCH_ERR_REQUEST_TOO_LARGE', `body of ${declared} bytes is over the limit of ${limit}`));
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        reject(new PerchError('PERCH_ERR_REQUEST_TOO_LARGE', `body is over the limit of ${limit} bytes`));
        req.removeAllListeners('data');
        req.resume(); // discard the rest; the answer is already decided
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, size)));
    req.on('error', reject);
  });
}
