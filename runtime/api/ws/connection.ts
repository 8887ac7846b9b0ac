// One WebSocket client. Messages are handled concurrently (answers may come out of order, each
// with its id). Backpressure: when too many requests are in flight, or the client does not read
// its answers (bufferedAmount grows), the connection stops reading frames until it catches up,
// so a slow or stuck client cannot grow the server's memory without bound.
import type { Duplex } from 'node:stream';
import type { WebSocket } from 'ws';
import { toPerchError } from '../../errors.js';
import type { Logger } from '../../log.js';
import { binaryFrame, parseFrame } from './frame.js';
import type { Topic } from './messages.js';

export interface ConnectionLimits {
  maxInflight: number;
  maxBufferedBytes: number;
}

export interface Reply {
  /** The answer object; `id` is added. */
  body: Record<string, unknown>;
  /** Binary tensor bytes: sent as a binary frame after the JSON header. */
  chunks?: Uint8Array[];
}

/** A read-only view of one connection's flow control (tests, diagnostics). */
export interface ConnectionStats {
  /** The client's port, to tell connections apart. */
  remotePort: number | undefined;
  /** Messages received and not yet answered. */
  inflight: number;
  /** True while the connection has stopped reading frames. */
  paused: boolean;
  /** Bytes queued for the client and not yet handed to the kernel. */
  bufferedAmount: number;
  /** The highest `inflight` and `bufferedAmount` seen so far. */
  peakInflight: number;
  peakBufferedAmount: number;
}

export type MessageHandler = (conn: Connection, message: unknown, binary: Uint8Array, isBinary: boolean) => Promise<Reply>;

export class Connection {
  private inflight = 0;
  private paused = false;
  private peakInflight = 0;
  private peakBuffered = 0;
  /** Frames ws emitted after the connection paused: at most what one socket read held. */
  private readonly held: Array<[Buffer, boolean]> = [];
  private readonly subscriptions = new Map<Topic, () => void>();
  private idleWaiters: Array<() => void> = [];
  private corked = false;

  constructor(
    readonly socket: WebSocket,
    /** The TCP socket under `socket`: corked so that answers finished together leave together. */
    private readonly transport: Duplex,
    private readonly limits: ConnectionLimits,
    private readonly handle: MessageHandler,
    private readonly log: Logger,
  ) {
    socket.on('message', (data: Buffer, isBinary) => this.onMessage(data, isBinary));
    socket.on('close', () => this.dispose());
    socket.on('error', (err) => log.debug({ err: err.message }, 'websocket error'));
  }

  subscribe(topic: Topic, attach: (push: (data: unknown) => void) => () => void): void {
    if (this.subscriptions.has(topic)) return;
    this.subscriptions.set(topic, attach((data) => this.send({ op: 'notify', topic, data })));
  }

  /** Resolves when every message received so far has been answered. */
  settled(): Promise<void> {
    if (this.inflight === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Read-only: added so tests can show that backpressure bounds what the server holds. */
  get stats(): ConnectionStats {
    return {
      remotePort: (this.socket as unknown as { _socket?: { remotePort?: number } })._socket?.remotePort,
      inflight: this.inflight,
      paused: this.paused,
      bufferedAmount: this.socket.bufferedAmount,
      peakInflight: this.peakInflight,
      peakBufferedAmount: this.peakBuffered,
    };
  }

  private onMessage(data: Buffer, isBinary: boolean): void {
    // ws goes on emitting the frames it had already read from the socket when pause() was
    // called (one socket read can hold many small frames), which let `inflight` run past
    // maxInflight (test/api/backpressure.test.ts). Hold them until the connection may read again.
    if (this.paused) {
      this.held.push([data, isBinary]);
      return;
    }
    this.handleFrame(data, isBinary);
  }

  private handleFrame(data: Buffer, isBinary: boolean): void {
    let id: string | null = null;
    this.inflight++;
    this.updateFlow();
    let work: Promise<Reply>;
    try {
      const frame = parseFrame(data, isBinary);
      id = frame.id;
      work = this.handle(this, frame.message, frame.binary, isBinary);
    } catch (err) {
      work = Promise.reject(err as Error);
    }
    // One then() with both handlers, not then/finally/catch: two promises fewer per message.
    work.then(
      (reply) => this.answer(id, reply, null),
      (err: unknown) => this.answer(id, null, err),
    );
  }

  /** Sends the answer (or the error) of one message and lets its slot go. */
  private answer(id: string | null, reply: Reply | null, failure: unknown): void {
    try {
      try {
        if (reply) {
          this.send({ id, ...reply.body }, reply.chunks);
        } else {
          const e = toPerchError(failure);
          if (e.code === 'PERCH_ERR_INTERNAL') this.log.error({ err: failure }, 'websocket handler failed');
          this.send({ id, ok: false, error: { code: e.code, message: e.message } });
        }
      } finally {
        this.inflight--;
        this.updateFlow();
        if (this.inflight === 0 && this.idleWaiters.length) {
          for (const w of this.idleWaiters.splice(0)) w();
        }
      }
    } catch (err) {
      this.log.error({ err }, 'websocket reply failed');
    }
  }

  send(body: Record<string, unknown>, chunks?: Uint8Array[]): void {
    if (this.socket.readyState !== this.socket.OPEN) return;
    const payload = chunks?.length ? binaryFrame(body, chunks) : JSON.stringify(body);
    this.cork();
    this.socket.send(payload, () => this.updateFlow());
    this.updateFlow();
  }

  /**
   * A finished batch answers all its requests in the same tick; without this each answer was
   * its own writev syscall (the biggest single cost on the main thread under load). Corked until
   * the end of the tick, they leave in one. ws corks and uncorks around each frame itself; the
   * socket counts nested corks, so ours holds until the tick ends.
   */
  private cork(): void {
    if (this.corked) return;
    this.corked = true;
    this.transport.cork();
    process.nextTick(() => {
      this.corked = false;
      this.transport.uncork();
    });
  }

  private updateFlow(): void {
    this.peakInflight = Math.max(this.peakInflight, this.inflight);
    this.peakBuffered = Math.max(this.peakBuffered, this.socket.bufferedAmount);
    const over = this.inflight >= this.limits.maxInflight || this.socket.bufferedAmount > this.limits.maxBufferedBytes;
    if (over && !this.paused) {
      this.paused = true;
      this.socket.pause();
    } else if (!over && this.paused) {
      this.paused = false;
      // Frames held while paused go first; handling one may pause the connection again.
      while (!this.paused && this.held.length > 0) {
        const [data, isBinary] = this.held.shift() as [Buffer, boolean];
        this.handleFrame(data, isBinary);
      }
      if (!this.paused) this.socket.resume();
    }
  }

  private dispose(): void {
    this.held.length = 0;
    for (const off of this.subscriptions.values()) off();
    this.subscriptions.clear();
  }
}
