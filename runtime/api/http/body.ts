import type { IncomingMessage } from 'node:http';
import { PerchError } from '../../base/errors.js';
import type { ClientBudget, Hold } from '../client-budget.js';

/** A declared body this large is copied into its buffer as it arrives (below: joined at its end). */
const COPY_AS_IT_COMES_BYTES = 256 * 1024;

/**
 * Reads a request body, refusing it as soon as it passes `limit` bytes (413) or does not fit the
 * client budget (429 PERCH_ERR_OVERLOADED). A declared Content-Length is taken from the budget
 * before a byte is read, so a flood of large bodies is refused at the headers; a chunked body
 * takes its bytes as they come. What was taken stays in `hold` until the request is answered.
 * A client that goes away mid-body rejects the read, so its chunks are let go at once.
 *
 * A body with a Content-Length is copied into one buffer of that size chunk by chunk as it
 * arrives, not gathered and joined at its end: joining a 12 MB body took 20-50 ms of one turn of
 * the event loop that answers health checks (profile of the 12 MB JSON attack,
 * docs/reliability.md), and the chunks and the joined copy were alive together.
 */
export function readBody(req: IncomingMessage, limit: number, budget: ClientBudget, hold: Hold): Promise<Buffer> {
  // A client already gone (a pipelined request behind one whose connection closed) sends nothing more.
  if (req.destroyed) return Promise.reject(new PerchError('PERCH_ERR_CLIENT_GONE', 'the client closed its connection before the body was read'));
  const declared = Number(req.headers['content-length']);
  const known = req.headers['content-length'] !== undefined && Number.isFinite(declared);
  if (known && declared > limit) {
    return Promise.reject(new PerchError('PERCH_ERR_REQUEST_TOO_LARGE', `body of ${declared} bytes is over the limit of ${limit}`));
  }
  if (known && declared > budget.limit) {
    return Promise.reject(new PerchError('PERCH_ERR_REQUEST_TOO_LARGE', `body of ${declared} bytes is over server.maxClientBytes (${budget.limit})`));
  }
  if (known && !hold.tryAdd(declared)) return Promise.reject(budget.refusal('request body', declared));
  return new Promise((resolve, reject) => {
    let chunks: Buffer[] = [];
    // Every byte of it is written before it is handed out (only its first `size` bytes are).
    // Small bodies come in one chunk, handed out as it is: no copy at all.
    let whole: Buffer | null = known && declared >= COPY_AS_IT_COMES_BYTES ? Buffer.allocUnsafe(declared) : null;
    let size = 0;
    // Once the body is whole or refused, the listeners go and the chunks with them: the 'close'
    // and 'error' listeners stay on the request until it is collected (with pipelining, long after
    // it was answered), and through them the chunks and the settled promise's body stayed live,
    // three times what the budget charged (heap snapshot of the infer flood, docs/reliability.md).
    const done = (): void => {
      chunks = [];
      whole = null;
      req.removeListener('data', onData);
      req.removeListener('end', onEnd);
      req.removeListener('error', fail);
      req.removeListener('close', onClose);
      req.on('error', ignore);
    };
    const fail = (err: Error): void => {
      done();
      req.resume(); // discard the rest; the answer is already decided
      reject(err);
    };
    const onData = (chunk: Buffer): void => {
      if (whole) {
        // Node's parser ends the body at its Content-Length; this guards the copy all the same.
        if (size + chunk.length > whole.length) return fail(new PerchError('PERCH_ERR_REQUEST_TOO_LARGE', `body is longer than its Content-Length of ${declared} bytes`));
        size += chunk.copy(whole, size);
        return;
      }
      size += chunk.length;
      if (size > limit) return fail(new PerchError('PERCH_ERR_REQUEST_TOO_LARGE', `body is over the limit of ${limit} bytes`));
      if (!known && !hold.tryAdd(chunk.length)) return fail(budget.refusal('request body', chunk.length));
      chunks.push(chunk);
    };
    const onEnd = (): void => {
      const body = whole ? (size === whole.length ? whole : whole.subarray(0, size)) : chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, size);
      done();
      resolve(body);
    };
    const onClose = (): void => {
      if (!req.complete) fail(new PerchError('PERCH_ERR_CLIENT_GONE', 'the client closed its connection before the body ended'));
    };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', fail);
    req.on('close', onClose);
  });
}

/** Errors of a request whose body was read or refused: its answer is already decided. */
function ignore(): void {}
