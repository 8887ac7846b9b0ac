// Memory back after a burst (docs/reliability.md). Request bodies, frames and answers live in
// ArrayBuffers outside V8's heap; V8 frees them only when it collects, and it collects when its
// own heap grows. Once the clients of a burst have gone nothing is allocated any more, so
// nothing is collected: after the infer flood the process kept 280 MB of dead ArrayBuffers
// 10 s later, and for as long as it stayed idle. When the client budget has been at (nearly)
// zero for IDLE_MS after a burst that held more than BURST_BYTES, one full collection runs, on
// the main thread and on every worker thread (runtime/base/full-collection.ts), and one more
// FOLLOW_UP_MS later if it is still idle: connections of the burst go on closing after the first
// (lingering closes, parked connections read again, slow-reader timers), and what they held
// became garbage after it ran (55 MB of ArrayBuffers 30 s after the infer flood, gone at the
// next collection; docs/reliability.md).
import { collectEverywhere } from '../base/full-collection.js';
import type { Clock, TimerHandle } from '../base/clock.js';
import type { Logger } from '../base/log.js';
import type { ClientBudget } from './client-budget.js';

/** A burst worth collecting after: the budget held at least this much. */
export const BURST_BYTES = 16 * 1024 * 1024;
/** Held bytes below this count as idle (a few keep-alive probes, a metrics scrape). */
const IDLE_BYTES = 1024 * 1024;
/** How long the budget must stay idle after a burst before collecting. */
export const IDLE_MS = 5000;
const CHECK_MS = 1000;
/** The second collection after a burst, this long after the first. */
export const FOLLOW_UP_MS = 10_000;

export class IdleCollector {
  private timer: TimerHandle | null = null;
  private burstPeak = 0;
  private idleSince: number | null = null;
  private collections = 0;
  /** When the follow-up collection is due (after a burst's first), else null. */
  private followUpAt: number | null = null;

  constructor(
    private readonly budget: ClientBudget,
    private readonly clock: Clock,
    private readonly log: Logger,
    private readonly collect: (() => void) | null = collectEverywhere(),
  ) {}

  /** Full collections run after bursts, since start. */
  get count(): number {
    return this.collections;
  }

  start(): void {
    if (this.collect === null || this.timer) return;
    const tick = (): void => {
      this.check();
      this.timer = this.clock.setTimeout(tick, CHECK_MS);
      (this.timer as { unref?: () => void }).unref?.();
    };
    this.timer = this.clock.setTimeout(tick, CHECK_MS);
    (this.timer as { unref?: () => void }).unref?.();
  }

  stop(): void {
    if (this.timer) this.clock.clearTimeout(this.timer);
    this.timer = null;
  }

  /** One check (the timer's; tests call it with a fake clock). */
  check(): void {
    const held = this.budget.heldBytes;
    this.burstPeak = Math.max(this.burstPeak, this.budget.takeRecentPeak());
    const now = this.clock.now();
    if (held > IDLE_BYTES) {
      this.idleSince = null;
      return;
    }
    this.idleSince ??= now;
    if (this.collect === null) return;
    if (this.burstPeak >= BURST_BYTES && now - this.idleSince >= IDLE_MS) {
      this.run('clients gone after a burst: memory collected', { burstPeakBytes: this.burstPeak });
      this.burstPeak = 0;
      this.followUpAt = now + FOLLOW_UP_MS;
    } else if (this.followUpAt !== null && now >= this.followUpAt) {
      this.followUpAt = null;
      this.run('after a burst: memory collected again', {});
    }
  }

  private run(message: string, fields: Record<string, unknown>): void {
    const t0 = performance.now();
    this.collect?.();
    this.collections++;
    this.log.info({ ...fields, ms: Math.round(performance.now() - t0) }, message);
  }
}
