// Memory back after a burst (docs/reliability.md). Request bodies, frames and answers live in
// ArrayBuffers outside V8's heap; V8 frees them only when it collects, and it collects when its
// own heap grows. Once the clients of a burst have gone nothing is allocated any more, so
// nothing is collected: after the infer flood the process kept 280 MB of dead ArrayBuffers
// 10 s later, and for as long as it stayed idle. When the client budget has been at (nearly)
// zero for IDLE_MS after a burst that held more than BURST_BYTES, one full collection runs, on
// the main thread and on every worker thread (runtime/base/full-collection.ts).
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

export class IdleCollector {
  private timer: TimerHandle | null = null;
  private burstPeak = 0;
  private idleSince: number | null = null;
  private collections = 0;

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
    if (this.burstPeak < BURST_BYTES || now - this.idleSince < IDLE_MS || this.collect === null) return;
    const t0 = performance.now();
    this.collect();
    this.collections++;
    this.log.info({ burstPeakBytes: this.burstPeak, ms: Math.round(performance.now() - t0) }, 'clients gone after a burst: memory collected');
    this.burstPeak = 0;
  }
}
