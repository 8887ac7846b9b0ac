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
import { STATUS_CODES, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
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

/** The socket's response being written (Node's own field), and the request it answers. */
type AnsweringSocket = Socket & { _httpMessage?: (ServerResponse & { req?: IncomingMessage }) | null };

/** Calls `then` once every answer Node has for `socket` is written: the one on it, then each queued behind it. */
function afterAnswers(socket: AnsweringSocket, then: () => void): void {
  const res = socket._httpMessage;
  if (!res) return then();
  // Node's own 'finish' listener ran first: it has put the next queued answer on the socket, if any.
  res.once('finish', () => afterAnswers(socket, then));
}

/**
 * `budget`: where bytes read and thrown away are counted (the control listener's thread has no
 * client budget: it passes a counter that keeps nothing).
 */
export function closeWithoutReset(server: Server, clock: Clock, budget: Pick<ClientBudget, 'discarded'>): void {
  const lingering = new WeakSet<Socket>();
  /** Connections whose parse error is answered once the answers before it are written. */
  const deferred = new WeakSet<Socket>();
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
    if (lingering.has(socket) || deferred.has(socket)) return;
    const code = (err as { code?: string }).code ?? '';
    if (code === 'ECONNRESET' || !socket.writable) return void socket.destroy();
    // Bytes after a request the client said was its last: its answer goes out, then the socket lingers.
    if (code === 'HPE_CLOSED_CONNECTION') return;
    const e = clientErrorOf(code, err.message);
    const answer = (): void => {
      if (socket.destroyed || !socket.writable) return; // closed meanwhile, or the last answer said close
      const body = JSON.stringify({ error: e.message, code: e.code });
      socket.write(`HTTP/1.1 ${e.status} ${STATUS_CODES[e.status] ?? ''}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
      linger(socket);
    };
    const res = (socket as AnsweringSocket)._httpMessage;
    if (res) {
      // The request being answered was read whole: the error is in what was pipelined behind it.
      // Its answer (and those of requests parsed before the error) go out first, then this one.
      // Given as that request's answer, the error took its place (a 400 for a valid inference,
      // kept alive, the real answer dropped) and the connection then hung with its parser broken.
      if (res.req?.complete) {
        deferred.add(socket);
        afterAnswers(socket as AnsweringSocket, answer);
        return;
      }
      // A request being answered whose body broke (bad chunk, early end): the error is its answer,
      // and the last on this connection, whose parser is broken (Node's resOnFinish then
      // lingers). Kept alive, as the request asked, the connection stayed open after the answer
      // until keepAliveTimeout (65 s) though its client had sent its FIN (the no-reset fuzzer).
      // If its answer has begun, nothing more can be said.
      if (res.headersSent) socket.destroy();
      else {
        res.shouldKeepAlive = false;
        sendError(res, e);
      }
      return;
    }
    answer();
  });
}

/** Node's parser errors as Perch errors: 413 for an oversized head, else 400 (a head too slow included). */
function clientErrorOf(code: string, message: string): PerchError {
  const perch: ErrorCode = code === 'HPE_HEADER_OVERFLOW' ? 'PERCH_ERR_REQUEST_TOO_LARGE' : 'PERCH_ERR_INVALID_MESSAGE';
  return new PerchError(perch, `malformed HTTP request (${code || 'parse error'}): ${message}`);
}
