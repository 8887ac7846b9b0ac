// In-service health per model version (docs/cloud-sync.md "In-service health"): every inference
// outcome the runtime answers (RuntimePort.onInference, the observer the rollback breaker uses)
// lands in a sliding window of `cloud.health.windowMs`, kept as 10 time buckets, each with a
// request count, an error count and a latency histogram. Memory is fixed per model version
// (buckets x bins), an outcome costs O(1), and the p99 comes from the histogram: the upper edge
// of the bin holding the 99th percentile, so it errs high by at most one bin (15 %).
// The window goes to state/reported as `health` (docs/protocol.md section 5), which the fleet's
// rollouts gate on.
import type { ErrorCode } from '../../runtime/base/errors.js';
import type { InferenceOutcome, RuntimePort } from '../../runtime/port/runtime-port.js';
import { NOT_THE_MODELS_FAULT } from './circuit-breaker.js';

const BUCKETS = 10;
/** Bin upper edges in ms: 0.1 ms x 1.15^i, up to about 10 minutes; anything slower lands in the last bin. */
const GROWTH = 1.15;
const FIRST_EDGE_MS = 0.1;
const BINS = 112;
const EDGES = Array.from({ length: BINS }, (_, i) => FIRST_EDGE_MS * GROWTH ** i);
/** Model versions tracked at once, at most (the least recently used is dropped). */
export const MAX_TRACKED_VERSIONS = 64;

export interface VersionHealth {
  /** Answered requests in the window (refusals for load or shutdown not counted). */
  requests: number;
  errors: number;
  /** errors / requests, 0 without requests. */
  errorRate: number;
  /** 99th percentile latency (queue + compute) in ms; null without requests. */
  p99Ms: number | null;
}

/** state/reported `health`: per model, per version (a string key) over the last `windowMs`. */
export interface HealthReport {
  windowMs: number;
  models: Record<string, Record<string, VersionHealth>>;
}

interface Bucket {
  /** Start of the bucket's slot (ms, the clock's monotonic time). */
  start: number;
  requests: number;
  errors: number;
  bins: Uint32Array;
}

function binOf(ms: number): number {
  if (!(ms > FIRST_EDGE_MS)) return 0;
  return Math.min(BINS - 1, Math.ceil(Math.log(ms / FIRST_EDGE_MS) / Math.log(GROWTH)));
}

class VersionWindow {
  readonly buckets: Bucket[] = Array.from({ length: BUCKETS }, () => ({ start: -Infinity, requests: 0, errors: 0, bins: new Uint32Array(BINS) }));

  constructor(private readonly slotMs: number) {}

  add(now: number, ok: boolean, latencyMs: number | undefined): void {
    const start = Math.floor(now / this.slotMs) * this.slotMs;
    const b = this.buckets[Math.floor(now / this.slotMs) % BUCKETS] as Bucket;
    if (b.start !== start) {
      b.start = start;
      b.requests = 0;
      b.errors = 0;
      b.bins.fill(0);
    }
    b.requests++;
    if (!ok) b.errors++;
    if (latencyMs !== undefined) b.bins[binOf(latencyMs)] = (b.bins[binOf(latencyMs)] as number) + 1;
  }

  summary(now: number): VersionHealth {
    const oldest = Math.floor(now / this.slotMs) * this.slotMs - (BUCKETS - 1) * this.slotMs;
    let requests = 0;
    let errors = 0;
    const bins = new Uint32Array(BINS);
    for (const b of this.buckets) {
      if (b.start < oldest || b.start > now) continue;
      requests += b.requests;
      errors += b.errors;
      for (let i = 0; i < BINS; i++) bins[i] = (bins[i] as number) + (b.bins[i] as number);
    }
    let p99Ms: number | null = null;
    let timed = 0;
    for (const n of bins) timed += n;
    if (timed > 0) {
      const rank = Math.ceil(timed * 0.99);
      let seen = 0;
      for (let i = 0; i < BINS; i++) {
        seen += bins[i] as number;
        if (seen >= rank) {
          p99Ms = Math.round((EDGES[i] as number) * 100) / 100;
          break;
        }
      }
    }
    return { requests, errors, errorRate: requests === 0 ? 0 : errors / requests, p99Ms };
  }
}

/** What of the runtime the monitor uses: inference outcomes, cloud.health, the clock. */
export type HealthRuntime = Pick<RuntimePort, 'inference' | 'cloud' | 'clock'>;

export class HealthMonitor {
  /** `name@version` -> window; a Map keeps insertion order, refreshed on use (LRU). */
  private readonly windows = new Map<string, { name: string; version: number; w: VersionWindow }>();
  private off: (() => void) | null = null;
  private timer: ReturnType<RuntimePort['clock']['setTimeout']> | null = null;
  private seenSinceReport = false;

  constructor(
    private readonly runtime: HealthRuntime,
    /** Asks for state/reported to go out (at most every reportMs, only after inference happened). */
    private readonly report: () => void,
  ) {}

  start(): void {
    this.off = this.runtime.inference.onOutcome((o) => this.observe(o));
    const { reportMs } = this.runtime.cloud.health;
    const tick = (): void => {
      this.timer = this.runtime.clock.setTimeout(tick, reportMs);
      if (!this.seenSinceReport) return;
      this.seenSinceReport = false;
      this.report();
    };
    this.timer = this.runtime.clock.setTimeout(tick, reportMs);
  }

  stop(): void {
    this.off?.();
    this.off = null;
    if (this.timer !== null) this.runtime.clock.clearTimeout(this.timer);
    this.timer = null;
  }

  observe(o: InferenceOutcome): void {
    if (!o.ok && o.code && NOT_THE_MODELS_FAULT.has(o.code as ErrorCode)) return;
    const key = `${o.model}@${o.version}`;
    let entry = this.windows.get(key);
    if (entry) {
      this.windows.delete(key);
    } else {
      entry = { name: o.model, version: o.version, w: new VersionWindow(this.runtime.cloud.health.windowMs / BUCKETS) };
      if (this.windows.size >= MAX_TRACKED_VERSIONS) this.windows.delete(this.windows.keys().next().value as string);
    }
    this.windows.set(key, entry);
    entry.w.add(this.runtime.clock.now(), o.ok, o.latencyMs);
    this.seenSinceReport = true;
  }

  /** The window as it stands: versions with no request in it are left out. */
  build(): HealthReport {
    const now = this.runtime.clock.now();
    const models: HealthReport['models'] = {};
    for (const { name, version, w } of this.windows.values()) {
      const s = w.summary(now);
      if (s.requests === 0) continue;
      (models[name] ??= {})[String(version)] = s;
    }
    return { windowMs: this.runtime.cloud.health.windowMs, models };
  }
}
