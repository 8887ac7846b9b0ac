import type { IncomingMessage } from 'node:http';
import { PerchError } from '../../base/errors.js';
import type { ClientBudget, Hold } from '../client-budget.js';
import { continueBody } from './expect-continue.js';

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
export function readBody(req: IncomingMessage, limit: number, budget: ClientBudget, hold: Hold, stallMs = 0): Promise<Buffer> {
  return read(req, limit, budget, hold, undefined, stallMs) as Promise<Buffer>;
}

/** An OIP binary body: its JSON header and the tensor bytes that follow it, each a buffer of its own. */
export interface SplitBody {
  json: Buffer;
  binary: Buffer;
}

/**
 * readBody for an OIP binary body whose Content-Length is declared and whose JSON header length
 * (Inference-Header-Content-Length, `headerLength`) fits it: the bytes are copied as they arrive
 * into two buffers, the header's and the tensors'. Joined into one and then cut, the tensor bytes
 * started at an arbitrary offset, so they were copied a second time (into an aligned buffer, or
 * out of the body to be moved to a session thread): two copies and two allocations of the
 * tensors per request, where the tensors' own buffer needs one and a single input owns it whole
 * (a worker executor moves it to its thread as it is; docs/benchmarks.md, issue 20). Anything
 * else (no Content-Length, a header length that does not fit) is readBody's, and so are every
 * limit and refusal.
 */
export function readSplitBody(req: IncomingMessage, limit: number, budget: ClientBudget, hold: Hold, headerLength: number, stallMs = 0): Promise<SplitBody> {
  // Tensor bytes under half Buffer's pool size would get a slice of the pool, not a buffer of
  // their own, and be copied again before a move: a small body is read whole (one chunk, no
  // copy) and handed out as two views, its tensors copied once where they go.
  if (!(declaredLength(req) - headerLength >= Buffer.poolSize >>> 1)) {
    return readBody(req, limit, budget, hold, stallMs).then((body) => ({ json: body.subarray(0, headerLength), binary: body.subarray(headerLength) }));
  }
  return read(req, limit, budget, hold, headerLength, stallMs) as Promise<SplitBody>;
}

/** The declared Content-Length, or NaN when there is none (chunked) or it is not a number. */
export function declaredLength(req: IncomingMessage): number {
  return req.headers['content-length'] === undefined ? Number.NaN : Number(req.headers['content-length']);
}

/**
 * `stallMs` (server.slowReaderTimeoutMs; 0 = none): a body from which nothing arrives this long is
 * refused 408 PERCH_ERR_BODY_TIMEOUT and its connection closes (reply.ts). Its declared length is
 * held of the budget from its headers (9 times it for JSON): red-team pass, five connections that
 * declared 3 MB JSON bodies and sent none held 113 MB of the 128 MiB budget until Node's
 * requestTimeout, 300 s. The socket's idle timer watches it (restarted at every read).
 */
function read(req: IncomingMessage, limit: number, budget: ClientBudget, hold: Hold, splitAt: number | undefined, stallMs: number): Promise<Buffer | SplitBody> {
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
  // Every check from the headers is made: a client waiting to send its body may now (expect-continue.ts).
  continueBody(req);
  const split = known && splitAt !== undefined && Number.isInteger(splitAt) && splitAt >= 0 && splitAt <= declared ? splitAt : undefined;
  return new Promise<Buffer | SplitBody>((resolve, reject) => {
    let chunks: Buffer[] = [];
    // Every byte of it is written before it is handed out (only its first `size` bytes are).
    // Small bodies come in one chunk, handed out as it is: no copy at all.
    let whole: Buffer | null = known && declared >= COPY_AS_IT_COMES_BYTES && split === undefined ? Buffer.allocUnsafe(declared) : null;
    // Split: the header's bytes, then the tensors' (their own buffer, at its offset 0 when over
    // Buffer's pool size, so aligned for every datatype).
    let head: Buffer | null = split === undefined ? null : Buffer.allocUnsafe(split);
    let tail: Buffer | null = split === undefined ? null : Buffer.allocUnsafe(declared - split);
    let size = 0;
    // Once the body is whole or refused, the listeners go and the chunks with them: the 'close'
    // and 'error' listeners stay on the request until it is collected (with pipelining, long after
    // it was answered), and through them the chunks and the settled promise's body stayed live,
    // three times what the budget charged (heap snapshot of the infer flood, docs/reliability.md).
    const done = (): void => {
      chunks = [];
      whole = null;
      head = null;
      tail = null;
      req.removeListener('data', onData);
      req.removeListener('end', onEnd);
      req.removeListener('error', fail);
      req.removeListener('close', onClose);
      req.on('error', ignore);
      if (stallMs > 0) {
        req.removeListener('timeout', onStall);
        req.socket.setTimeout(0);
      }
    };
    const fail = (err: Error): void => {
      done();
      req.resume(); // discard the rest; the answer is already decided
      reject(err);
    };
    const onData = (chunk: Buffer): void => {
      if (head && tail) {
        if (size + chunk.length > declared) return fail(new PerchError('PERCH_ERR_REQUEST_TOO_LARGE', `body is longer than its Content-Length of ${declared} bytes`));
        const inHead = Math.max(0, Math.min(chunk.length, head.length - size));
        if (inHead > 0) chunk.copy(head, size, 0, inHead);
        if (inHead < chunk.length) chunk.copy(tail, size + inHead - head.length, inHead);
        size += chunk.length;
        return;
      }
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
      if (head && tail) {
        // Only what arrived is handed out (Node's parser ends a body at its Content-Length).
        const parts = { json: size >= head.length ? head : head.subarray(0, size), binary: size >= declared ? tail : tail.subarray(0, Math.max(0, size - head.length)) };
        done();
        resolve(parts);
        return;
      }
      const body = whole ? (size === whole.length ? whole : whole.subarray(0, size)) : chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, size);
      done();
      resolve(body);
    };
    const onClose = (): void => {
      if (!req.complete) fail(new PerchError('PERCH_ERR_CLIENT_GONE', 'the client closed its connection before the body ended'));
    };
    const onStall = (): void => {
      fail(new PerchError('PERCH_ERR_BODY_TIMEOUT', `nothing of the body arrived for ${stallMs} ms (${size} of ${known ? declared : 'an unknown number of'} bytes came)`));
    };
    if (stallMs > 0 && !req.complete) {
      // On the request, not the socket: Node's server destroys a timed-out socket unless its
      // request, response or server takes the 'timeout' event, and the 408 is to be written first.
      req.socket.setTimeout(stallMs);
      req.once('timeout', onStall);
    }
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', fail);
    req.on('close', onClose);
  });
}

/** Errors of a request whose body was read or refused: its answer is already decided. */
function ignore(): void {}
