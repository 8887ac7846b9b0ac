// The slow-reader clock of one WebSocket connection (connection.ts; docs/reliability.md "Clients
// that go away, and clients that do not read"): armed while its answers sit unread, stopped when
// they are taken; if they still sit unread when it fires, the client is cut off (close code 1008).
import type { Clock, TimerHandle } from '../../base/clock.js';

/** RFC 6455 section 7.4.1: 1008 policy violation (here: answers left unread too long). */
export const CLOSE_SLOW_READER = 1008;

export class SlowReaderClock {
  private timer: TimerHandle | null = null;

  constructor(
    private readonly clock: Clock,
    private readonly timeoutMs: number,
    /** Answers were unread for the whole of timeoutMs. */
    private readonly fire: () => void,
  ) {}

  /** `unread`: answers sit unread now (the clock runs on); false stops it. */
  watch(unread: boolean): void {
    if (!unread) {
      this.stop();
      return;
    }
    if (this.timer) return;
    this.timer = this.clock.setTimeout(() => {
      this.timer = null;
      this.fire();
    }, this.timeoutMs);
  }

  stop(): void {
    if (this.timer) this.clock.clearTimeout(this.timer);
    this.timer = null;
  }
}
