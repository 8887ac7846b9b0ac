// How a WebSocket connection learns that its client is going (connection.ts): ws's 'close', the
// TCP socket's, a half-close, and the client's close frame, each told once it happens.
import type { Duplex } from 'node:stream';
import type { WebSocket } from 'ws';
import type { Logger } from '../../base/log.js';

export interface CloseEvents {
  /** The connection is gone: what it held is given back. */
  gone(): void;
  /** The client's close frame arrived: it sends nothing more. */
  closeFrame(): void;
}

export function watchClose(socket: WebSocket, transport: Duplex, log: Logger, on: CloseEvents): void {
  socket.on('close', () => on.gone());
  // ws emits 'close' only once its receiver has ended, which can lag the socket (a paused
  // connection with frames still parsed): what the connection held goes with the TCP socket.
  transport.once('close', () => on.gone());
  socket.on('error', (err) => log.debug({ err: err.message }, 'websocket error'));
  // A client that half-closes without a close frame will never read what is still queued for
  // it: drop the socket now, not after ws's 30 s closing timeout.
  transport.once('end', () => socket.terminate());
  // ws 8 tells a close frame's arrival only on its receiver ('conclude'), as partial-frames.ts
  // reads it; test/api/ws-close-frame.test.ts fails if it stops.
  (socket as unknown as { _receiver?: { once(e: 'conclude', fn: () => void): void } | null })._receiver?.once('conclude', () => on.closeFrame());
}
