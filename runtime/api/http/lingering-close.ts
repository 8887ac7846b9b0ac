// Closing an HTTP connection without resetting it (docs/reliability.md). An answer given before
// the request's body was read (an error, a refusal from the headers) on a connection that then
// closes: Node closed the socket with the client's body still arriving, and the kernel answers
// unread bytes with a reset, which can destroy the answer before the client reads it (the
// campaign saw 72 of 3,026 fuzzed requests end so). Instead the socket half-closes after the
// answer and goes on reading, discarding, until the client closes or LINGER_MS pass (Apache's
// lingering close). Node calls socket.destroySoon() exactly there. Requests Node's parser
// refuses ('clientError') get a JSON answer with a PERCH_ERR_* code the same way.
// Lingering connections are not read at full speed but a few at a time, each for one turn of the
// loop (linger-reader.ts): 60 clients refused from their headers went on sending 31 MiB bodies,
// and reading and discarding them took the loop from health checks (docs/reliability.md,
// "Malformed HTTP"). What a client still sends waits in its socket buffers meanwhile, which is no reset.
// What a lingering connection read is counted as discarded when it closes (client-budget.ts): the
// 31 MiB bodies refused from their headers were read and thrown away, hundreds of MB of socket
// reads the budget never held, so no collection followed them (docs/reliability.md "Memory after a burst").
import { STATUS_CODES, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Clock } from '../../base/clock.js';
import type { ClientBudget } from '../client-budget.js';
import { PerchError, type ErrorCode } from '../../base/errors.js';
import { LingerReader } from './linger-reader.js';
import { lingeringOf } from './park.js';
import { sendError } from './reply.js';

/** How long a closing connection goes on reading (and discarding) what its client still sends. */
export const LINGER_MS = 2000;

/** Reads `socket` in turn with the other lingering connections until it closes. */
function readPaced(socket: Socket, reader: LingerReader): void {
  const conn = lingeringOf(socket);
  reader.add(conn);
  socket.once('close', () => reader.remove(conn));
}

export function closeWithoutReset(server: Server, clock: Clock, budget: ClientBudget): void {
  const lingering = new WeakSet<Socket>();
  const reader = new LingerReader(clock);
  const linger = (socket: Socket): void => {
    if (socket.destroyed || lingering.has(socket)) return;
    lingering.add(socket);
    // Read from here on is discarded; counted once, when the socket closes (no cost per read).
    const readBefore = socket.bytesRead;
    socket.once('close', () => budget.discarded(socket.bytesRead - readBefore));
    socket.end();
    if (socket.readableEnded) return void socket.once('finish', () => socket.destroy());
    // Node's parser goes on reading the body into a request that discards it (req._dump()).
    readPaced(socket, reader);
    const timer = clock.setTimeout(() => socket.destroy(), LINGER_MS);
    socket.once('close', () => clock.clearTimeout(timer));
    socket.once('end', () => socket.destroy());
  };
  server.on('connection', (socket: Socket) => {
    socket.destroySoon = function lingeringClose(this: Socket): void {
      linger(this);
    };
  });
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => {
    // Its answer went out and it lingers: Node's request timeout for the unread body, or a
    // parse error in it, must not turn into a reset now.
    if (lingering.has(socket)) return;
    const code = (err as { code?: string }).code ?? '';
    if (code === 'ECONNRESET' || !socket.writable) return void socket.destroy();
    // Bytes after a request the client said was its last: its answer goes out, then the socket lingers.
    if (code === 'HPE_CLOSED_CONNECTION') return;
    const e = clientErrorOf(code, err.message);
    // A request being answered whose body broke (bad chunk, early end): the error is its answer
    // (Node's resOnFinish then lingers); if its answer has begun, nothing more can be said.
    const res = (socket as { _httpMessage?: ServerResponse | null })._httpMessage;
    if (res) {
      if (res.headersSent) socket.destroy();
      else sendError(res, e);
      return;
    }
    const body = JSON.stringify({ error: e.message, code: e.code });
    socket.write(`HTTP/1.1 ${e.status} ${STATUS_CODES[e.status] ?? ''}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
    linger(socket);
  });
}

/** Node's parser errors as Perch errors: 413 for an oversized head, else 400 (a head too slow included). */
function clientErrorOf(code: string, message: string): PerchError {
  const perch: ErrorCode = code === 'HPE_HEADER_OVERFLOW' ? 'PERCH_ERR_REQUEST_TOO_LARGE' : 'PERCH_ERR_INVALID_MESSAGE';
  return new PerchError(perch, `malformed HTTP request (${code || 'parse error'}): ${message}`);
}
