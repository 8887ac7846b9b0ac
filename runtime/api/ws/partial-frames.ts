// Frames still arriving on one WebSocket connection, and what they hold of the client budget
// (docs/reliability.md "Bytes held for clients"). A frame arrives in pieces, and ws holds them
// until it is whole (up to maxFrameBytes per connection): 300 connections each part-way through a
// 32 MiB frame held 9.6 GB that no budget saw. What ws holds is charged as it grows. Bytes that
// do not fit are already here: they are counted all the same, and the connection is parked
// (intake.ts) so that no more arrive until there is room. An unfinished frame that still finds no
// room after STALL_MS more than the slow-reader timeout is given up: the connection is closed with
// 1013 (try again later), since a frame cannot be answered before it is whole.
import type { Duplex } from 'node:stream';
import type { WebSocket } from 'ws';
import type { Clock, TimerHandle } from '../../base/clock.js';
import type { Logger } from '../../base/log.js';
import type { Hold } from '../client-budget.js';
import { MAX_LAG_PARK_MS, MAX_REFUSAL_PARK_MS, type Intake, type Parkable } from '../intake.js';

/** IANA WebSocket close code 1013, Try Again Later: a frame being received does not fit the client budget. */
export const CLOSE_TRY_AGAIN_LATER = 1013;
/** Past the slow-reader timeout, how long an unfinished frame may wait for room (longer than any park). */
const STALL_MS = MAX_REFUSAL_PARK_MS + MAX_LAG_PARK_MS;
/** How long a connection closed in the middle of a frame is kept for its close frame to leave. */
const CLOSE_GRACE_MS = 2000;

export interface PartialFramesContext {
  socket: WebSocket;
  /** The TCP socket under `socket`. */
  transport: Duplex;
  /** The connection's share of the client budget. */
  hold: Hold;
  intake: Intake;
  parkable: Parkable;
  clock: Clock;
  log: Logger;
  slowReaderTimeoutMs: number;
  /** True once the connection is gone. */
  gone: () => boolean;
  remotePort: () => number | undefined;
}

export class PartialFrames {
  /** Bytes ws holds of frames not yet complete, charged to `hold`. */
  private bytes = 0;
  private stallTimer: TimerHandle | null = null;
  /** Closed for an unfinished frame that does not fit: never read again. */
  closing = false;

  constructor(private readonly c: PartialFramesContext) {}

  /**
   * Charges what ws holds now (after each socket read, and when a frame is whole). Reads ws's
   * receiver (ws 8: `_bufferedBytes`, `_messageLength` of the fragments so far);
   * test/api/client-budget.test.ts fails if ws stops keeping them.
   */
  charge(): void {
    if (this.c.gone() || this.closing) return;
    const r = (this.c.socket as unknown as { _receiver?: { _bufferedBytes?: number; _messageLength?: number } | null })._receiver;
    const now = (r?._bufferedBytes ?? 0) + (r?._messageLength ?? 0);
    if (now > this.bytes) {
      if (this.c.hold.tryAdd(now - this.bytes)) {
        this.watchStall(false);
      } else {
        this.c.hold.add(now - this.bytes);
        this.c.intake.refused(this.c.parkable);
        this.watchStall(true);
      }
    } else if (now < this.bytes) {
      this.c.hold.sub(this.bytes - now);
      this.watchStall(false);
    }
    this.bytes = now;
  }

  /** The connection is gone (its hold is released as a whole). */
  stop(): void {
    this.watchStall(false);
  }

  private watchStall(stalled: boolean): void {
    const { clock } = this.c;
    if (!stalled) {
      if (this.stallTimer) clock.clearTimeout(this.stallTimer);
      this.stallTimer = null;
      return;
    }
    if (this.stallTimer) return;
    this.stallTimer = clock.setTimeout(() => {
      this.stallTimer = null;
      if (this.c.gone() || this.bytes === 0) return;
      this.c.log.warn({ remotePort: this.c.remotePort(), bytes: this.bytes }, 'websocket frame being received finds no room in the client budget: closed');
      this.closeUnfinished();
    }, this.c.slowReaderTimeoutMs + STALL_MS);
  }

  /**
   * Closes with 1013 a connection in the middle of a frame. The client's answering close frame
   * sits behind the rest of its frame, so the close handshake cannot finish: reading stops, and
   * the socket is dropped once the close frame had time to reach the client (dropping it at once
   * with unread bytes would reset the connection under the close frame).
   */
  private closeUnfinished(): void {
    this.closing = true;
    const { socket, transport, clock } = this.c;
    try {
      socket.close(CLOSE_TRY_AGAIN_LATER, 'the client budget is spent (server.maxClientBytes): try again later');
    } catch {
      // already closing
    }
    transport.pause();
    const timer = clock.setTimeout(() => socket.terminate(), CLOSE_GRACE_MS);
    transport.once('close', () => clock.clearTimeout(timer));
  }
}
