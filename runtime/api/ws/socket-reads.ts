// A paused WebSocket connection reads nothing more from its socket (docs/reliability.md "Clients
// that go away, and clients that do not read"). ws's pause() pauses the TCP socket, which stops
// its 'data' events but not its reads: Node reads once more, a chunk of up to 64 KiB, into the
// stream's buffer (the stream reads ahead while its buffer is under its high-water mark, and
// starts libuv's reads again if they were stopped). 300 paused connections held 19 MB of those
// reads, charged to no budget, through the never-reading attack. Here the handle's reads stop
// when the connection pauses and start again when it resumes: the bytes wait in the kernel, and
// the client under TCP flow control.
import type { Duplex } from 'node:stream';

/** net.Socket's handle as Node 20 keeps it (`reading` is Node's own flag, see net.js tryReadStart). */
interface ReadHandle {
  reading?: boolean;
  readStop?: () => number;
}

type Transport = Duplex & { _handle?: ReadHandle | null; _read: (n: number) => void };

export class SocketReads {
  private stopped = false;
  /**
   * The handle's reads are to start again at start(): they were on when stop() stopped them (the
   * stream, waiting for the read it asked for, asks for no other), or the stream asked to read
   * while stopped.
   */
  private restart = false;
  private readonly read: ((n: number) => void) | null = null;

  constructor(private readonly transport: Duplex) {
    const t = transport as Transport;
    // A socket without a libuv handle (a test's duplex, a TLS wrapper) is left as it is.
    if (typeof t._handle?.readStop !== 'function' || typeof t._read !== 'function') return;
    const read = t._read;
    this.read = read;
    t._read = (n: number) => {
      if (this.stopped) {
        this.restart = true;
        return;
      }
      read.call(t, n);
    };
  }

  /** Reads stop now (ws's pause() was called): what the client sends meanwhile stays in the kernel. */
  stop(): void {
    if (this.stopped || !this.read) return;
    const handle = (this.transport as Transport)._handle;
    if (!handle) return;
    this.stopped = true;
    if (handle.reading) {
      handle.reading = false;
      handle.readStop?.();
      this.restart = true;
    }
  }

  /** Reads may start again; call before ws's resume(). */
  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    if (this.restart && this.read) {
      // net.js _read starts the handle's reads when they are off.
      this.restart = false;
      this.read.call(this.transport, 0);
    }
  }
}
