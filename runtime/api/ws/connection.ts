// One WebSocket client. Messages are handled concurrently (answers may come out of order, each
// with its id). Backpressure: when too many requests are in flight, or the client does not read
// its answers (bufferedAmount grows), the connection stops reading frames until it catches up,
// so a slow or stuck client cannot grow the server's memory without bound.
//
// Every frame being handled and every answer not yet written is also taken from the process-wide
// client budget (client-budget.ts): a frame that does not fit is answered PERCH_ERR_OVERLOADED
// at once. A client that leaves its answers unread longer than slowReaderTimeoutMs is cut off
// (close code 1008), and when a connection closes its scope closes (queued work dropped, tied
// sequences ended) and everything it held is given back (docs/reliability.md). Frames still
// arriving are charged by partial-frames.ts. Its parts: answer-writer.ts writes what it sends,
// slow-reader.ts runs the slow-reader clock, close-watch.ts tells it its client is going, and
// may-infer.ts says which frames the intake paces.
import type { Duplex } from 'node:stream';
import type { WebSocket } from 'ws';
import type { Clock } from '../../base/clock.js';
import { toPerchError } from '../../base/errors.js';
import type { ClientScope } from '../../inference/client-scope.js';
import type { Logger } from '../../base/log.js';
import type { ClientBudget, Hold } from '../client-budget.js';
import type { Intake, Parkable } from '../intake.js';
import { FrameAnswer, type Answer, type Reply } from './answer.js';
import { AnswerWriter } from './answer-writer.js';
import { watchClose } from './close-watch.js';
import { frameCost, parseFrame, refusedFrameId, type MessageId } from './frame.js';
import { mayInfer } from './may-infer.js';
import { PartialFrames } from './partial-frames.js';
import { CLOSE_SLOW_READER, SlowReaderClock } from './slow-reader.js';
import { SocketReads } from './socket-reads.js';
import type { Topic } from './messages.js';

export interface ConnectionLimits {
  maxInflight: number;
  maxBufferedBytes: number;
  slowReaderTimeoutMs: number;
}

/** Refusals for load: the connection that got one is parked (intake.ts). */
const LOAD_REFUSALS: ReadonlySet<string> = new Set(['PERCH_ERR_QUEUE_FULL', 'PERCH_ERR_OVERLOADED']);
/**
 * A connection with more answers than this not yet handed to the kernel stops being read until
 * they are: its client does not keep up, and the answers to what it has in flight are still to
 * come (docs/reliability.md "Clients that go away, and clients that do not read"). A client that
 * reads holds next to nothing here: the kernel's socket buffers take its answers as they come
 * (the throughput benchmark's 8 in flight of about 5 KB, a stream's one). Read on past it, 300
 * clients that never read had Perch work for them until their answers filled the budget. While
 * the budget is spent, or unread answers hold more than their share of it
 * (ClientBudget.unreadFull), this much unread also runs the slow-reader clock.
 */
export const UNREAD_PAUSE_BYTES = 64 * 1024;

export interface ConnectionContext {
  limits: ConnectionLimits;
  budget: ClientBudget;
  /** Holds back inference input while the event loop lags (intake.ts). */
  intake: Intake;
  scope: ClientScope;
  clock: Clock;
  log: Logger;
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
  /** Bytes read from the socket and not yet handed to ws (none while paused: socket-reads.ts). */
  readBufferBytes: number;
}

/**
 * Answers through `answer`, at once or later; a synchronous throw is answered as a failure. Not a
 * promise: an inference's answer leaves from its batch's settlement (docs/benchmarks.md, "Stream
 * chunks on the main thread").
 */
export type MessageHandler = (conn: Connection, message: unknown, binary: Uint8Array, isBinary: boolean, answer: Answer) => void;

export class Connection {
  private inflight = 0;
  private paused = false;
  private peakInflight = 0;
  private peakBuffered = 0;
  /** Frames ws emitted after the connection paused: at most what one socket read held. */
  private readonly held: Array<[Buffer, boolean]> = [];
  private readonly subscriptions = new Map<Topic, () => void>();
  private idleWaiters: Array<() => void> = [];
  /** Handling the frames held while paused (updateFlow). */
  private releasing = false;
  private readonly limits: ConnectionLimits;
  private readonly log: Logger;
  /** Frame and answer bytes this connection holds of the client budget. */
  readonly hold: Hold;
  private readonly slowReader: SlowReaderClock;
  private readonly writer: AnswerWriter;
  /** Parked by the intake: not read until it lets the connection go. */
  private parked = false;
  private readonly parkable: Parkable;
  /** Frames still arriving, charged to `hold` (partial-frames.ts). */
  private readonly partial: PartialFrames;
  /** The socket's reads, stopped while the connection is paused (socket-reads.ts). */
  private readonly reads: SocketReads;

  constructor(
    readonly socket: WebSocket,
    /** The TCP socket under `socket`: corked so that answers finished together leave together. */
    private readonly transport: Duplex,
    private readonly ctx: ConnectionContext,
    private readonly handle: MessageHandler,
  ) {
    this.limits = ctx.limits;
    this.log = ctx.log;
    this.hold = ctx.budget.hold();
    this.reads = new SocketReads(transport);
    this.writer = new AnswerWriter(socket, transport, this.hold, () => this.updateFlow());
    this.slowReader = new SlowReaderClock(ctx.clock, this.limits.slowReaderTimeoutMs, () => {
      this.log.warn({ remotePort: this.stats.remotePort, bufferedAmount: this.socket.bufferedAmount }, 'websocket client does not read its answers: cut off');
      this.cutOff(CLOSE_SLOW_READER, `slow reader: answers unread for ${this.limits.slowReaderTimeoutMs} ms`);
    });
    // eslint-disable-next-line @typescript-eslint/no-this-alias -- the getter below needs the connection
    const conn = this;
    this.parkable = {
      pause: () => {
        this.parked = true;
        this.updateFlow();
      },
      resume: () => {
        this.parked = false;
        this.updateFlow();
      },
      get closed() {
        return conn.closed;
      },
    };
    this.partial = new PartialFrames({
      socket, transport, hold: this.hold, intake: ctx.intake, parkable: this.parkable, clock: ctx.clock, log: ctx.log,
      slowReaderTimeoutMs: this.limits.slowReaderTimeoutMs, gone: () => this.disposed, remotePort: () => this.stats.remotePort,
    });
    socket.on('message', (data: Buffer, isBinary) => this.onMessage(data, isBinary));
    // After ws's own 'data' listener (it was attached when the upgrade completed): what its
    // receiver still holds of unfinished frames is known by then.
    transport.on('data', () => this.partial.charge());
    watchClose(socket, transport, ctx.log, { gone: () => this.dispose(), closeFrame: () => this.closeFrameReceived() });
  }

  /**
   * The client's close frame: it sends nothing more, and ws answers with its own close frame and
   * ends the socket, then waited up to 30 s for the client to close its side. A peer that never
   * did kept its sequences, its queued work and its bytes of the budget all that time (docs/reliability.md
   * "Clients that go away"). Its scope ends now (tied sequences end, queued work is dropped), it
   * is sent no more notifications, frames held back are let go, and once ws's close frame and
   * FIN are in the kernel the socket goes, with everything it held. Answers still unread stay
   * counted until then: a peer that does not read is cut off by the slow-reader clock or ws's timeout.
   */
  private closeFrameReceived(): void {
    if (this.disposed) return;
    this.ctx.scope.close();
    for (const off of this.subscriptions.values()) off();
    this.subscriptions.clear();
    for (const [data, isBinary] of this.held.splice(0)) this.hold.sub(frameCost(data, isBinary));
    if (this.transport.writableFinished) this.transport.destroy();
    else this.transport.once('finish', () => this.transport.destroy());
  }

  get scope(): ClientScope {
    return this.ctx.scope;
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
      readBufferBytes: this.transport.readableLength,
    };
  }

  private onMessage(data: Buffer, isBinary: boolean): void {
    if (this.disposed) return;
    // The frame is whole: ws no longer holds it as unfinished.
    this.partial.charge();
    // A client that asks for status (or subscribes, or emits) one message at a time is not paced;
    // one that pipelines them is, like inference (mayInfer).
    if (this.inflight > 0 || this.held.length > 0 || mayInfer(data, isBinary)) this.ctx.intake.pace(this.parkable);
    const cost = frameCost(data, isBinary);
    if (!this.hold.tryAdd(cost)) {
      this.refuse(data, isBinary, cost);
      return;
    }
    // ws goes on emitting the frames it had already read from the socket when pause() was
    // called (one socket read can hold many small frames), which let `inflight` run past
    // maxInflight (test/api/backpressure.test.ts). Hold them until the connection may read again.
    if (this.paused) {
      this.held.push([data, isBinary]);
      return;
    }
    this.handleFrame(data, isBinary);
  }

  /** The budget is spent: the frame is answered at once and let go. */
  private refuse(data: Buffer, isBinary: boolean, cost: number): void {
    const id = refusedFrameId(data, isBinary);
    const e = this.ctx.budget.refusal('message', cost);
    this.ctx.budget.discarded(data.length);
    this.send({ id, ok: false, error: { code: e.code, message: e.message } });
    this.ctx.intake.refused(this.parkable);
  }

  private handleFrame(data: Buffer, isBinary: boolean): void {
    const answer = new FrameAnswer(this, frameCost(data, isBinary));
    this.inflight++;
    this.updateFlow();
    try {
      const frame = parseFrame(data, isBinary);
      answer.id = frame.id;
      this.handle(this, frame.message, frame.binary, isBinary, answer);
    } catch (err) {
      answer.fail(err);
    }
  }

  /**
   * Sends the answer (or the error) of one message and lets its slot (and its frame's bytes) go
   * (FrameAnswer: once per message).
   */
  answer(id: MessageId | null, reply: Reply | null, failure: unknown, cost: number): void {
    this.hold.sub(cost);
    try {
      try {
        if (reply) {
          this.writer.reply(id, reply); // the flow is updated below
        } else {
          const e = toPerchError(failure);
          if (e.code === 'PERCH_ERR_INTERNAL') this.log.error({ err: failure }, 'websocket handler failed');
          if (LOAD_REFUSALS.has(e.code)) this.ctx.intake.refused(this.parkable);
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
    this.writer.send(body, chunks);
  }

  private updateFlow(): void {
    const buffered = this.socket.bufferedAmount;
    this.peakInflight = Math.max(this.peakInflight, this.inflight);
    this.peakBuffered = Math.max(this.peakBuffered, buffered);
    // Answers not taken: past UNREAD_PAUSE_BYTES reading stops. The slow-reader clock runs past
    // the connection's own limit, or past UNREAD_PAUSE_BYTES while the budget is spent (its
    // refusals would pile up unread too) or unread answers hold more than their share of it.
    const backedUp = buffered > UNREAD_PAUSE_BYTES;
    const unread = buffered > this.limits.maxBufferedBytes || (backedUp && this.ctx.budget.unreadFull);
    this.slowReader.watch(unread && !this.disposed);
    // `unread` implies `backedUp`: maxBufferedBytesPerConnection is at least UNREAD_PAUSE_BYTES (config/schema.ts).
    const over = backedUp || this.parked || this.inflight >= this.limits.maxInflight;
    if (over && !this.paused) {
      this.paused = true;
      this.socket.pause();
      this.reads.stop();
    } else if (!over && this.paused) {
      this.paused = false;
      // A held frame answered at once (a refusal) comes back here: the loop below goes on.
      if (this.releasing) return;
      this.releasing = true;
      try {
        // Frames held while paused go first; handling one may pause the connection again.
        while (!this.paused && this.held.length > 0) {
          const [data, isBinary] = this.held.shift() as [Buffer, boolean];
          this.handleFrame(data, isBinary);
        }
      } finally {
        this.releasing = false;
      }
      if (!this.paused && !this.partial.closing) {
        this.reads.start();
        this.socket.resume();
      }
    }
  }

  /**
   * Closes with `code` and drops the socket without waiting for the client to read the close
   * frame: it sits behind the very answers the client does not read.
   */
  cutOff(code: number, reason: string): void {
    try {
      this.socket.close(code, reason);
    } catch {
      // already closing
    }
    this.socket.terminate();
  }

  private disposed = false;

  /** True once the connection is gone (its bytes given back). */
  get closed(): boolean {
    return this.disposed;
  }

  private dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.partial.stop();
    this.slowReader.stop();
    this.held.length = 0;
    this.ctx.scope.close();
    this.hold.release();
    for (const off of this.subscriptions.values()) off();
    this.subscriptions.clear();
  }
}
