// One WebSocket client. Messages are handled concurrently (answers may come out of order, each
// with its id). Backpressure: when too many requests are in flight, or the client does not read
// its answers (bufferedAmount grows), the connection stops reading frames until it catches up,
// so a slow or stuck client cannot grow the server's memory without bound.
//
// Every frame being handled and every answer not yet written is also taken from the process-wide
// client budget (client-budget.ts): a frame that does not fit is answered PERCH_ERR_OVERLOADED
// at once. A client that leaves its answers unread longer than slowReaderTimeoutMs is cut off
// (close code 1008), and when a connection closes its scope closes (queued work dropped, tied
// sequences ended) and everything it held is given back (docs/reliability.md).
import type { Duplex } from 'node:stream';
import type { WebSocket } from 'ws';
import type { Clock, TimerHandle } from '../../base/clock.js';
import { toPerchError } from '../../base/errors.js';
import type { ClientScope } from '../../inference/client-scope.js';
import type { Logger } from '../../base/log.js';
import { JSON_EXPANSION, type ClientBudget, type Hold } from '../client-budget.js';
import { MAX_LAG_PARK_MS, MAX_REFUSAL_PARK_MS, type Intake, type Parkable } from '../intake.js';
import { binaryFrame, parseFrame, type MessageId } from './frame.js';
import type { Topic } from './messages.js';

export interface ConnectionLimits {
  maxInflight: number;
  maxBufferedBytes: number;
  slowReaderTimeoutMs: number;
}

/** RFC 6455 section 7.4.1: 1008 policy violation (here: answers left unread too long). */
export const CLOSE_SLOW_READER = 1008;
/** IANA WebSocket close code 1013, Try Again Later: a frame being received does not fit the client budget. */
export const CLOSE_TRY_AGAIN_LATER = 1013;
/** Past the slow-reader timeout, how long an unfinished frame may wait for room (longer than any park). */
const STALL_MS = MAX_REFUSAL_PARK_MS + MAX_LAG_PARK_MS;
/** How long a connection closed in the middle of a frame is kept for its close frame to leave. */
const CLOSE_GRACE_MS = 2000;
/** Refusals for load: the connection that got one is parked (intake.ts). */
const LOAD_REFUSALS: ReadonlySet<string> = new Set(['PERCH_ERR_QUEUE_FULL', 'PERCH_ERR_OVERLOADED']);
/** While the budget is spent, a connection with this much unread stops being read too. */
const SPENT_BUFFER_LIMIT = 64 * 1024;
/** Refused frames up to this size are parsed for their id, so the refusal matches the request. */
const ID_PARSE_LIMIT = 1024 * 1024;
/** A larger one: its id is looked for in its first bytes (clients put it first, as docs/api.md shows). */
const ID_SCAN_BYTES = 4096;
const ID_PATTERN = /^\s*\{\s*"id"\s*:\s*(?:"((?:[^"\\]|\\.)*)"|(-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)\s*[,}])/;

export interface ConnectionContext {
  limits: ConnectionLimits;
  budget: ClientBudget;
  /** Holds back inference input while the event loop lags (intake.ts). */
  intake: Intake;
  scope: ClientScope;
  clock: Clock;
  log: Logger;
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
  private readonly limits: ConnectionLimits;
  private readonly log: Logger;
  /** Frame and answer bytes this connection holds of the client budget. */
  readonly hold: Hold;
  private slowTimer: TimerHandle | null = null;
  /** Parked by the intake: not read until it lets the connection go. */
  private parked = false;
  private readonly parkable: Parkable;
  /** Bytes ws holds of frames not yet complete, charged to `hold`. */
  private partial = 0;
  /** Closed for an unfinished frame that does not fit: never read again. */
  private closing = false;
  private stallTimer: TimerHandle | null = null;

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
    socket.on('message', (data: Buffer, isBinary) => this.onMessage(data, isBinary));
    // After ws's own 'data' listener (it was attached when the upgrade completed): what its
    // receiver still holds of unfinished frames is known by then.
    transport.on('data', () => this.chargePartial());
    socket.on('close', () => this.dispose());
    // ws emits 'close' only once its receiver has ended, which can lag the socket (a paused
    // connection with frames still parsed): what the connection held goes with the TCP socket.
    transport.once('close', () => this.dispose());
    socket.on('error', (err) => ctx.log.debug({ err: err.message }, 'websocket error'));
    // A client that half-closes without a close frame will never read what is still queued for
    // it: drop the socket now, not after ws's 30 s closing timeout.
    transport.once('end', () => socket.terminate());
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
    };
  }

  /**
   * A frame arrives in pieces, and ws holds them until it is whole (up to maxFrameBytes per
   * connection): 300 connections each part-way through a 32 MiB frame held 9.6 GB that no budget
   * saw. What ws holds is charged as it grows. Bytes that do not fit are already here: they are
   * counted all the same, and the connection is parked (intake.ts) so that no more arrive until
   * there is room. An unfinished frame that still finds no room after STALL_MS more than the
   * slow-reader timeout is given up: the connection is closed with 1013 (try again later), since
   * a frame cannot be answered before it is whole.
   * Reads ws's receiver (ws 8: `_bufferedBytes`, `_messageLength` of the fragments so far);
   * test/api/client-budget.test.ts fails if ws stops keeping them.
   */
  private chargePartial(): void {
    if (this.disposed || this.closing) return;
    const r = (this.socket as unknown as { _receiver?: { _bufferedBytes?: number; _messageLength?: number } | null })._receiver;
    const now = (r?._bufferedBytes ?? 0) + (r?._messageLength ?? 0);
    if (now > this.partial) {
      if (this.hold.tryAdd(now - this.partial)) {
        this.watchStall(false);
      } else {
        this.hold.add(now - this.partial);
        this.ctx.intake.refused(this.parkable);
        this.watchStall(true);
      }
    } else if (now < this.partial) {
      this.hold.sub(this.partial - now);
      this.watchStall(false);
    }
    this.partial = now;
  }

  private watchStall(stalled: boolean): void {
    if (!stalled) {
      if (this.stallTimer) this.ctx.clock.clearTimeout(this.stallTimer);
      this.stallTimer = null;
      return;
    }
    if (this.stallTimer) return;
    this.stallTimer = this.ctx.clock.setTimeout(() => {
      this.stallTimer = null;
      if (this.disposed || this.partial === 0) return;
      this.log.warn({ remotePort: this.stats.remotePort, bytes: this.partial }, 'websocket frame being received finds no room in the client budget: closed');
      this.closeUnfinished();
    }, this.limits.slowReaderTimeoutMs + STALL_MS);
  }

  /**
   * Closes with 1013 a connection in the middle of a frame. The client's answering close frame
   * sits behind the rest of its frame, so the close handshake cannot finish: reading stops, and
   * the socket is dropped once the close frame had time to reach the client (dropping it at once
   * with unread bytes would reset the connection under the close frame).
   */
  private closeUnfinished(): void {
    this.closing = true;
    try {
      this.socket.close(CLOSE_TRY_AGAIN_LATER, 'the client budget is spent (server.maxClientBytes): try again later');
    } catch {
      // already closing
    }
    this.transport.pause();
    const timer = this.ctx.clock.setTimeout(() => this.socket.terminate(), CLOSE_GRACE_MS);
    this.transport.once('close', () => this.ctx.clock.clearTimeout(timer));
  }

  private onMessage(data: Buffer, isBinary: boolean): void {
    if (this.disposed) return;
    // The frame is whole: ws no longer holds it as unfinished.
    this.chargePartial();
    this.ctx.intake.pace(this.parkable);
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
    let id: MessageId | null = null;
    try {
      if (data.length <= ID_PARSE_LIMIT) id = parseFrame(data, isBinary).id;
      else {
        const m = ID_PATTERN.exec(data.toString('utf8', isBinary ? 4 : 0, ID_SCAN_BYTES));
        if (m?.[1] !== undefined) id = JSON.parse(`"${m[1]}"`) as string;
        else if (m?.[2] !== undefined && Number.isFinite(Number(m[2]))) id = Number(m[2]);
      }
    } catch {
      // not readable: the refusal goes out with id null
    }
    const e = this.ctx.budget.refusal('message', cost);
    this.send({ id, ok: false, error: { code: e.code, message: e.message } });
    this.ctx.intake.refused(this.parkable);
  }

  private handleFrame(data: Buffer, isBinary: boolean): void {
    let id: MessageId | null = null;
    const cost = frameCost(data, isBinary);
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
      (reply) => this.answer(id, reply, null, cost),
      (err: unknown) => this.answer(id, null, err, cost),
    );
  }

  /** Sends the answer (or the error) of one message and lets its slot (and its frame's bytes) go. */
  private answer(id: MessageId | null, reply: Reply | null, failure: unknown, cost: number): void {
    this.hold.sub(cost);
    try {
      try {
        if (reply) {
          this.send({ id, ...reply.body }, reply.chunks);
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
    if (this.socket.readyState !== this.socket.OPEN) return;
    const payload = chunks?.length ? binaryFrame(body, chunks) : JSON.stringify(body);
    // Held until ws has handed it to the kernel (its callback); a string's length stands in for its UTF-8 size.
    const size = payload.length;
    this.hold.add(size);
    this.cork();
    this.socket.send(payload, () => {
      this.hold.sub(size);
      this.updateFlow();
    });
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
    const buffered = this.socket.bufferedAmount;
    this.peakInflight = Math.max(this.peakInflight, this.inflight);
    this.peakBuffered = Math.max(this.peakBuffered, buffered);
    // Unread answers: over the connection's own limit, or any real amount while the budget is
    // spent (its refusals would pile up unread too). Reading stops, and the slow-reader clock runs.
    const unread = buffered > this.limits.maxBufferedBytes || (buffered > SPENT_BUFFER_LIMIT && this.ctx.budget.spent);
    this.watchSlowReader(unread);
    const over = unread || this.parked || this.inflight >= this.limits.maxInflight;
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
      if (!this.paused && !this.closing) this.socket.resume();
    }
  }

  /** Armed while answers sit unread; if they still do when it fires, the client is cut off. */
  private watchSlowReader(unread: boolean): void {
    if (!unread || this.disposed) {
      if (this.slowTimer) this.ctx.clock.clearTimeout(this.slowTimer);
      this.slowTimer = null;
      return;
    }
    if (this.slowTimer) return;
    this.slowTimer = this.ctx.clock.setTimeout(() => {
      this.slowTimer = null;
      this.log.warn({ remotePort: this.stats.remotePort, bufferedAmount: this.socket.bufferedAmount }, 'websocket client does not read its answers: cut off');
      this.cutOff(CLOSE_SLOW_READER, `slow reader: answers unread for ${this.limits.slowReaderTimeoutMs} ms`);
    }, this.limits.slowReaderTimeoutMs);
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
    this.watchStall(false);
    if (this.slowTimer) this.ctx.clock.clearTimeout(this.slowTimer);
    this.slowTimer = null;
    this.held.length = 0;
    this.ctx.scope.close();
    this.hold.release();
    for (const off of this.subscriptions.values()) off();
    this.subscriptions.clear();
  }
}

/** What handling a frame holds: its bytes, and the parse cost of its JSON (client-budget.ts). */
function frameCost(data: Buffer, isBinary: boolean): number {
  if (!isBinary) return data.length * JSON_EXPANSION;
  const header = data.length >= 4 ? Math.min(data.readUInt32LE(0), data.length - 4) : 0;
  return data.length + header * (JSON_EXPANSION - 1);
}
