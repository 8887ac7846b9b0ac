// Rollback on failure in service: after an update, the new version's inference outcomes are
// watched in a sliding window of `rollback.windowMs` (injected clock). Once the window holds at
// least `rollback.minRequests` requests and the failure ratio reaches `rollback.errorRatio`, the
// breaker trips once and the updater rolls back to the previous version. The watch lasts while
// that version serves (until it is replaced, rolled back, or the agent stops); it is not
// persisted, so a reboot ends it.
import type { ErrorCode } from '../../runtime/base/errors.js';
import type { InferenceOutcome, RuntimePort } from '../../runtime/port/runtime-port.js';

/** Refusals caused by load or shutdown, not by the model: they say nothing about the new version. */
export const NOT_THE_MODELS_FAULT: ReadonlySet<ErrorCode> = new Set(['PERCH_ERR_QUEUE_FULL', 'PERCH_ERR_SHUTTING_DOWN']);

export interface Trip {
  name: string;
  version: number;
  requests: number;
  failures: number;
  ratio: number;
  windowMs: number;
}

interface Watch {
  version: number;
  /** [time, ok] of each outcome in the window, oldest first. */
  outcomes: { t: number; ok: boolean }[];
  failures: number;
}

/** What of the runtime the breaker uses: inference outcomes, cloud.rollback, the clock. */
export type BreakerRuntime = Pick<RuntimePort, 'inference' | 'cloud' | 'clock'>;

export class CircuitBreaker {
  private readonly watches = new Map<string, Watch>();
  private off: (() => void) | null = null;

  constructor(
    private readonly runtime: BreakerRuntime,
    private readonly onTrip: (trip: Trip) => void,
  ) {}

  start(): void {
    this.off = this.runtime.inference.onOutcome((o) => this.observe(o));
  }

  stop(): void {
    this.off?.();
    this.off = null;
    this.watches.clear();
  }

  watch(name: string, version: number): void {
    this.watches.set(name, { version, outcomes: [], failures: 0 });
  }

  unwatch(name: string): void {
    this.watches.delete(name);
  }

  watching(name: string): number | null {
    return this.watches.get(name)?.version ?? null;
  }

  private observe(o: InferenceOutcome): void {
    const w = this.watches.get(o.model);
    if (!w || w.version !== o.version) return;
    if (!o.ok && o.code && NOT_THE_MODELS_FAULT.has(o.code)) return;
    const { errorRatio, minRequests, windowMs } = this.runtime.cloud.rollback;
    const now = this.runtime.clock.now();
    w.outcomes.push({ t: now, ok: o.ok });
    if (!o.ok) w.failures++;
    while (w.outcomes.length > 0 && (w.outcomes[0]?.t ?? now) <= now - windowMs) {
      if (!w.outcomes.shift()?.ok) w.failures--;
    }
    const requests = w.outcomes.length;
    if (requests < minRequests) return;
    const ratio = w.failures / requests;
    if (ratio < errorRatio) return;
    this.watches.delete(o.model);
    this.onTrip({ name: o.model, version: o.version, requests, failures: w.failures, ratio, windowMs });
  }
}
