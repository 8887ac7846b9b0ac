// Deletes PUBACKed events from the outbox in batches. Each outbox ack is a transaction; done
// once per event-loop turn (about one window of PUBACKs, ~32 events at batchSize 1) the
// transactions, each with its fsync then, not MQTT, bounded a backlog drain. Held back a little,
// one transaction deletes thousands of events.
//
// Holding an ack back is safe: until it commits, the events stay stored and claimed (so not
// sent twice by this connection); a crash in between only means they are sent again after the
// restart, which at-least-once delivery allows (consumers dedup on (deviceId, seq)). Nothing is
// deleted before its PUBACK: only PUBACKed seqs are ever added here.
import type { Clock, TimerHandle } from '../../runtime/base/clock.js';
import { toPerchError } from '../../runtime/base/errors.js';
import type { Logger } from '../../runtime/base/log.js';
import type { OutboxQueue } from '../../runtime/port/runtime-port.js';

export interface AckBatcherOptions {
  /** Flush at once when this many are waiting. */
  maxPending: number;
  /** Flush at the latest this long after the first one waiting (keeps the outbox count current). */
  maxDelayMs: number;
}

export class AckBatcher {
  private pending: number[] = [];
  private timer: TimerHandle | null = null;
  private flushing: Promise<void> = Promise.resolve();

  constructor(
    private readonly outbox: Pick<OutboxQueue, 'ack'>,
    private readonly clock: Clock,
    private readonly log: Logger,
    private readonly opts: AckBatcherOptions,
  ) {}

  get waiting(): number {
    return this.pending.length;
  }

  /** PUBACKed seqs: deleted by the next flush. */
  add(seqs: readonly number[]): void {
    for (const s of seqs) this.pending.push(s);
    if (this.pending.length >= this.opts.maxPending) void this.flush();
    else if (this.timer === null) this.timer = this.clock.setTimeout(() => void this.flush(), this.opts.maxDelayMs);
  }

  /** Deletes everything waiting now; resolves when that (and any earlier flush) is committed or failed. */
  flush(): Promise<void> {
    if (this.timer !== null) this.clock.clearTimeout(this.timer);
    this.timer = null;
    if (this.pending.length === 0) return this.flushing;
    const seqs = this.pending;
    this.pending = [];
    const done = this.outbox.ack(seqs).then(
      () => undefined,
      (err: unknown) => {
        // Still claimed, so not sent again: try the delete again with the next flush.
        const e = toPerchError(err);
        this.log.warn({ code: e.code, err: e.message, count: seqs.length }, 'outbox ack failed; will retry');
        this.pending = seqs.concat(this.pending);
        if (this.timer === null) this.timer = this.clock.setTimeout(() => void this.flush(), Math.max(this.opts.maxDelayMs, 1000));
      },
    );
    this.flushing = Promise.all([this.flushing, done]).then(() => undefined);
    return this.flushing;
  }

  /** Stops the timer; what is waiting stays claimed in memory (sent again after a restart). */
  stop(): void {
    if (this.timer !== null) this.clock.clearTimeout(this.timer);
    this.timer = null;
  }
}
