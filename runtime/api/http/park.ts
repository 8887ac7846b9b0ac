// Stopping and restarting the reading of an HTTP connection (the intake, ../intake.ts). The HTTP
// parser consumes the socket's data in C++ and Node resumes the socket itself whenever a request
// body is read or dumped, so socket.pause() alone did not hold: the next pipelined requests were
// parsed at once. Node's own guard against pipelining floods (lib/_http_server.js, v20) pauses
// through `socket._paused`, which also pauses the parser and which readStart() respects, and
// resumes with parser.resume() + socket.resume() once the socket drains; this does the same.
import type { Socket } from 'node:net';
import type { Parkable } from '../intake.js';

interface HttpSocket extends Socket {
  _paused?: boolean;
  parser?: { resume(): void } | null;
}

const parkables = new WeakMap<Socket, Parkable>();
/** Connections that linger after their last answer (lingering-close.ts): read by the linger reader only. */
const lingering = new WeakMap<Socket, Parkable>();

function pause(s: HttpSocket): void {
  s._paused = true;
  s.pause();
}

function resume(s: HttpSocket): void {
  if (s.destroyed) return;
  // Paused by Node for answers the client has not taken: its 'drain' handler resumes.
  if (s.writableNeedDrain) return;
  s._paused = false;
  s.parser?.resume();
  s.resume();
}

/** The handle of `socket` kept in `handles`, made once: pause, `read` to resume, closed. */
function handleOf(handles: WeakMap<Socket, Parkable>, socket: Socket, read: (s: HttpSocket) => void): Parkable {
  let p = handles.get(socket);
  if (!p) {
    const s = socket as HttpSocket;
    p = {
      pause: () => pause(s),
      resume: () => read(s),
      get closed() {
        return s.destroyed;
      },
    };
    handles.set(socket, p);
  }
  return p;
}

/** A lingering connection parked before it lingered is not read at full speed when its park ends. */
function resumeUnlessLingering(s: HttpSocket): void {
  if (!lingering.has(s)) resume(s);
}

/** The one Parkable of an HTTP connection (the intake keeps one entry per connection). */
export function parkableOf(socket: Socket): Parkable {
  return handleOf(parkables, socket, resumeUnlessLingering);
}

/** The connection as it lingers: from now on only this handle reads it (linger-reader.ts). */
export function lingeringOf(socket: Socket): Parkable {
  return handleOf(lingering, socket, resume);
}
