// Memory back after a burst (docs/reliability.md). Request bodies, frames and answers live in
// ArrayBuffers outside V8's heap; V8 frees them only when it collects, and it collects when its
// own heap grows. Once the clients of a burst have gone nothing is allocated any more, so
// nothing is collected: after the infer flood the process kept 280 MB of dead ArrayBuffers
// 10 s later, and for as long as it stayed idle. When the client budget has been at (nearly)
// zero, and nothing more was read and discarded, for IDLE_MS after a burst that held more than
// BURST_BYTES or read and discarded that much (a refused frame, a lingering connection's body:
// client-budget.ts discarded(); the 31 MiB bodies refused from their headers held nothing and
// left 60-130 MB of socket reads, docs/reliability.md), one full collection runs, on
// the main thread and on every worker thread (runtime/base/full-collection.ts), and one more
// FOLLOW_UP_MS later if it is still idle: connections of the burst go on closing after the first
// (lingering closes, parked connections read again, slow-reader timers), and what they held
// became garbage after it ran (55 MB of ArrayBuffers 30 s after the infer flood, gone at the
// next collection; docs/reliability.md).
// Traffic that never held much at once is a burst as well once BURST_BYTES have passed through
// the budget (client-budget.ts takeTaken): steady streams keep the budget near zero, and after
// 30 s of the soak's load stopped the process stayed 40-50 MB over idle for minutes (V8's young
// generation left at its largest, glibc's heap full; the memory reducer of V8 did not run again:
// docs/reliability.md "Memory after a burst"). It is collected after once QUIET_MS passed with
// next to nothing taken (QUIET_BYTES a check: a few small requests), so never while work goes on;
// and a follow-up collection is dropped once work comes back.
// Work the budget does not see counts as traffic too (base/work-meter.ts): the input bytes of the
// batches sessions ran and the pixels pipelines decoded. Eight 128 KB PNGs to `ocr` took 1 MB of
// the budget and left pp-ocr-det's session holding an arena of hundreds of MB, and nothing
// collected after them; with their work counted the sessions are renewed QUIET_MS after the last
// (sessions/session-renewal.ts; docs/models.md "One batch's memory").
// After each of the two, once every thread has answered that its collection is done, the main
// thread calls glibc's malloc_trim(0) (base/malloc-trim.ts): the collections free memory inside
// glibc's heaps, and the main heap keeps it under a few live blocks near its top until trimmed
// (after the never-reading attack, docs/reliability.md).
import { Counter, Gauge, type Registry } from 'prom-client';
import { collectEverywhere } from '../base/full-collection.js';
import type { Clock, TimerHandle } from '../base/clock.js';
import type { Logger } from '../base/log.js';
import { mallocTrim, type MallocTrim } from '../base/malloc-trim.js';
import type { WorkMeter } from '../base/work-meter.js';
import type { ClientBudget } from './client-budget.js';

const MB = 1024 * 1024;

/** A burst worth collecting after: the budget held at least this much, or this much was read and discarded. */
export const BURST_BYTES = 16 * 1024 * 1024;
/** Held bytes below this count as idle (a few keep-alive probes, a metrics scrape), and bytes discarded per check below this. */
const IDLE_BYTES = 1024 * 1024;
/** How long the budget must stay idle after a burst before collecting. */
export const IDLE_MS = 5000;
const CHECK_MS = 1000;
/** Bytes taken per check at most this count as quiet: a small request or two (health probes and metrics scrapes take none). */
const QUIET_BYTES = 4 * 1024;
/**
 * How long traffic must stay quiet after passing BURST_BYTES before collecting: longer than a
 * pause in a stream (or a benchmark's switch between servers), shorter than the 30 s after which
 * issue 12 wants memory back. A collection gives V8's young generation back, which costs the next
 * traffic a little garbage collection while it grows again: 5 s took a collection into every
 * 6 s pause of `streams-ab.js` and its follow-up into the next round (docs/reliability.md).
 */
export const QUIET_MS = 20_000;
/** The second collection after a burst, this long after the first. */
export const FOLLOW_UP_MS = 10_000;

export class IdleCollector {
  private timer: TimerHandle | null = null;
  private burstPeak = 0;
  /** Bytes read and discarded since the last collection, while discarding went on (see check). */
  private burstDiscarded = 0;
  /** Bytes taken by the budget since the last collection (traffic; see check). */
  private burstTaken = 0;
  /** Of burstTaken, the work the budget did not see (WorkMeter), for the log. */
  private burstWork = 0;
  private idleSince: number | null = null;
  /** Since when next to nothing was taken (null: traffic in the last check). */
  private quietSince: number | null = null;
  private collections = 0;
  /** When the follow-up collection is due (after a burst's first), else null. */
  private followUpAt: number | null = null;
  private trims = 0;
  private trimmed: Promise<void> = Promise.resolve();

  /**
   * `collect`: one collection on every thread, settling when the threads are done (null: V8
   * refuses). `trim`: malloc_trim, run after each collection has settled. `work`: inference and
   * decoding done since the last check, counted as traffic (null: the budget's bytes only).
   */
  constructor(
    private readonly budget: ClientBudget,
    private readonly clock: Clock,
    private readonly log: Logger,
    private readonly collect: (() => unknown) | null = collectEverywhere(),
    readonly trim: MallocTrim = mallocTrim(),
    private readonly work: WorkMeter | null = null,
  ) {}

  /** Full collections run after bursts, since start. */
  get count(): number {
    return this.collections;
  }

  /** malloc_trim calls made after collections, since start. */
  get trimCount(): number {
    return this.trims;
  }

  /** Settles when the last collection's trim has run (tests wait on it). */
  get settled(): Promise<void> {
    return this.trimmed;
  }

  start(): void {
    if (this.collect === null || this.timer) return;
    if (!this.trim.available) this.log.info({ reason: this.trim.reason }, 'malloc_trim not available: after bursts glibc keeps the memory the collections free');
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
    const discarded = this.budget.takeDiscarded();
    this.burstDiscarded += discarded;
    const work = this.work?.take() ?? 0;
    const taken = this.budget.takeTaken() + work;
    this.burstTaken += taken;
    this.burstWork += work;
    const now = this.clock.now();
    // Refused clients hold nothing: while they are still being read and discarded it is no idle.
    if (held > IDLE_BYTES || discarded > IDLE_BYTES) {
      this.idleSince = null;
      this.quietSince = null;
      return;
    }
    this.idleSince ??= now;
    if (taken > QUIET_BYTES) {
      this.quietSince = null;
      // Work came back after a burst's collection: its follow-up would run in the middle of it.
      this.followUpAt = null;
    } else this.quietSince ??= now;
    if (this.collect === null) return;
    const idleLongEnough = now - this.idleSince >= IDLE_MS;
    const quietLongEnough = this.quietSince !== null && now - this.quietSince >= QUIET_MS;
    const heldOrDiscarded = idleLongEnough && (this.burstPeak >= BURST_BYTES || this.burstDiscarded >= BURST_BYTES);
    const traffic = quietLongEnough && this.burstTaken >= BURST_BYTES;
    if (heldOrDiscarded || traffic) {
      this.run('clients gone after a burst: memory collected', { burstPeakBytes: this.burstPeak, discardedBytes: this.burstDiscarded, takenBytes: this.burstTaken, workBytes: this.burstWork });
      this.burstPeak = 0;
      this.burstDiscarded = 0;
      this.burstTaken = 0;
      this.burstWork = 0;
      this.followUpAt = now + FOLLOW_UP_MS;
    } else if (this.followUpAt !== null && now >= this.followUpAt) {
      this.followUpAt = null;
      this.run('after a burst: memory collected again', {});
    } else {
      // Idle (or quiet) for IDLE_MS and no burst: a trickle of refusals or of small requests is
      // not summed over hours into a collection in the middle of later work.
      if (idleLongEnough) this.burstDiscarded = 0;
      if (quietLongEnough) {
        this.burstTaken = 0;
        this.burstWork = 0;
      }
    }
  }

  private run(message: string, fields: Record<string, unknown>): void {
    const t0 = performance.now();
    const threadsDone = this.collect?.();
    this.collections++;
    this.log.info({ ...fields, ms: Math.round(performance.now() - t0) }, message);
    if (!this.trim.available) return;
    this.trimmed = Promise.resolve(threadsDone).then(() => this.trimNow(), () => this.trimNow());
  }

  private trimNow(): void {
    const before = process.memoryUsage.rss();
    const t0 = performance.now();
    const released = this.trim.trim();
    const ms = performance.now() - t0;
    this.trims++;
    const after = process.memoryUsage.rss();
    this.log.info(
      { released, ms: Math.round(ms * 10) / 10, rssBeforeMB: Math.round(before / MB), rssAfterMB: Math.round(after / MB) },
      'after a burst: free heap memory given back (malloc_trim)',
    );
  }
}

/** perch_memory_trim_available and perch_memory_trims_total (docs/api.md "Metrics", docs/reliability.md). */
export function registerMemoryMetrics(registry: Registry, collector: IdleCollector): void {
  new Gauge({
    name: 'perch_memory_trim_available', help: '1 when glibc\'s malloc_trim is called after bursts (the native/malloc-trim.c addon loaded), else 0.', registers: [registry],
    collect() {
      this.set(collector.trim.available ? 1 : 0);
    },
  });
  new Counter({
    name: 'perch_memory_trims_total', help: 'malloc_trim calls after the collections that follow a burst, since start.', registers: [registry],
    collect() {
      this.reset();
      this.inc(collector.trimCount);
    },
  });
}
