// The `metrics` topic (WebSocket `subscribe`, SSE /v1/events; docs/api.md): once per interval,
// throughput, batch sizes and latency quantiles over that interval, queue depths and the outbox.
// Read from the Prometheus registry's counters and histograms (their change since the last tick),
// so the request path pays nothing for it; the timer runs only while someone listens.
import type { IgnoredNote } from './base/bus.js';
import type { Clock, TimerHandle } from './base/clock.js';
import type { Logger } from './base/log.js';
import type { InferenceMetrics } from './base/metrics.js';
import type { OutboxStats } from './store/outbox.js';

export interface LiveMetricsSources {
  metrics: InferenceMetrics;
  queue: () => Record<string, number>;
  outbox: () => OutboxStats;
  connectivity: () => string;
  /** The cloud agent's last `ignored` note, if any (connectivity.ts watchIgnored). */
  cloudIgnored?: () => IgnoredNote | null;
  clock: Clock;
  log: Logger;
  intervalMs: number;
}

/** Per model, over the last interval. Latencies in ms, estimated from histogram buckets. */
export interface ModelRates {
  itemsPerSec: number;
  batchesPerSec: number;
  avgBatch: number;
  queueP50Ms: number | null;
  queueP99Ms: number | null;
  computeP50Ms: number | null;
  computeP99Ms: number | null;
}

export interface MetricsSample {
  /** Wall-clock ms of the sample. */
  at: number;
  intervalMs: number;
  itemsPerSec: number;
  /** Queue wait + one batch's compute, at each quantile: an upper estimate of request latency. */
  latencyP50Ms: number | null;
  latencyP99Ms: number | null;
  models: Record<string, ModelRates>;
  queue: Record<string, number>;
  outbox: { count: number; bytes: number; oldestAgeMs: number };
  connectivity: string;
  /** The last desired document the cloud agent did not apply; absent when there is none. */
  cloudIgnored?: IgnoredNote;
}

type Buckets = Map<string, Map<number, number>>; // model -> le -> cumulative count
interface Snapshot { items: Map<string, number>; execs: Map<string, number>; queue: Buckets; compute: Buckets }

export class LiveMetrics {
  private readonly listeners = new Set<(s: MetricsSample) => void>();
  private timer: TimerHandle | null = null;
  private last: Snapshot | null = null;
  private lastAt = 0;
  /** A sample is being taken: the next is scheduled when it is done. */
  private ticking = false;

  constructor(private readonly src: LiveMetricsSources) {}

  subscribe(push: (s: MetricsSample) => void): () => void {
    this.listeners.add(push);
    if (this.timer === null && !this.ticking) this.schedule();
    return () => {
      this.listeners.delete(push);
      if (this.listeners.size === 0) {
        if (this.timer !== null) this.src.clock.clearTimeout(this.timer);
        this.timer = null;
        this.last = null;
      }
    };
  }

  private schedule(): void {
    this.timer = this.src.clock.setTimeout(() => {
      this.timer = null;
      this.ticking = true;
      this.tick().catch((err: unknown) => this.src.log.warn({ err }, 'metrics sample failed')).finally(() => {
        this.ticking = false;
        if (this.listeners.size > 0 && this.timer === null) this.schedule();
      });
    }, this.last === null ? 0 : this.src.intervalMs);
  }

  private async tick(): Promise<void> {
    const now = this.src.clock.now();
    const snap = await snapshot(this.src.metrics);
    if (this.listeners.size === 0) return; // nobody left: no baseline kept
    const prev = this.last;
    const seconds = (now - this.lastAt) / 1000;
    this.last = snap;
    this.lastAt = now;
    // The first tick only sets the baseline: rates need two snapshots.
    if (prev === null || seconds <= 0) return;
    const sample = sampleOf(prev, snap, seconds, this.src);
    for (const push of [...this.listeners]) push(sample);
  }
}

async function snapshot(m: InferenceMetrics): Promise<Snapshot> {
  const [items, execs, queue, compute] = await Promise.all([m.items.get(), m.execs.get(), m.queueDuration.get(), m.computeDuration.get()]);
  const perModel = (values: Array<{ labels: Record<string, string | number | undefined>; value: number }>): Map<string, number> => {
    const out = new Map<string, number>();
    for (const v of values) out.set(String(v.labels.model), (out.get(String(v.labels.model)) ?? 0) + v.value);
    return out;
  };
  const buckets = (values: Array<{ labels: Record<string, string | number | undefined>; value: number; metricName?: string }>): Buckets => {
    const out: Buckets = new Map();
    for (const v of values) {
      if (!v.metricName?.endsWith('_bucket') || v.labels.le === undefined) continue;
      const le = v.labels.le === '+Inf' ? Infinity : Number(v.labels.le);
      const model = String(v.labels.model);
      let b = out.get(model);
      if (!b) out.set(model, (b = new Map()));
      b.set(le, (b.get(le) ?? 0) + v.value);
    }
    return out;
  };
  return { items: perModel(items.values), execs: perModel(execs.values), queue: buckets(queue.values), compute: buckets(compute.values) };
}

function sampleOf(prev: Snapshot, cur: Snapshot, seconds: number, src: LiveMetricsSources): MetricsSample {
  const models: Record<string, ModelRates> = {};
  let items = 0;
  const allQueue = new Map<number, number>();
  const allCompute = new Map<number, number>();
  for (const [model, n] of cur.items) {
    const di = n - (prev.items.get(model) ?? 0);
    const de = (cur.execs.get(model) ?? 0) - (prev.execs.get(model) ?? 0);
    const dq = delta(prev.queue.get(model), cur.queue.get(model));
    const dc = delta(prev.compute.get(model), cur.compute.get(model));
    addInto(allQueue, dq);
    addInto(allCompute, dc);
    items += di;
    models[model] = {
      itemsPerSec: round(di / seconds), batchesPerSec: round(de / seconds), avgBatch: de > 0 ? round(di / de) : 0,
      queueP50Ms: quantileMs(dq, 0.5), queueP99Ms: quantileMs(dq, 0.99), computeP50Ms: quantileMs(dc, 0.5), computeP99Ms: quantileMs(dc, 0.99),
    };
  }
  const sum = (a: number | null, b: number | null): number | null => (a === null || b === null ? null : round(a + b));
  const o = src.outbox();
  const ignored = src.cloudIgnored?.() ?? null;
  return {
    at: src.clock.wallNow(), intervalMs: Math.round(seconds * 1000), itemsPerSec: round(items / seconds),
    latencyP50Ms: sum(quantileMs(allQueue, 0.5), quantileMs(allCompute, 0.5)),
    latencyP99Ms: sum(quantileMs(allQueue, 0.99), quantileMs(allCompute, 0.99)),
    models, queue: src.queue(), outbox: { count: o.count, bytes: o.bytes, oldestAgeMs: o.oldestAgeMs }, connectivity: src.connectivity(),
    ...(ignored ? { cloudIgnored: ignored } : {}),
  };
}

function delta(a: Map<number, number> | undefined, b: Map<number, number> | undefined): Map<number, number> {
  const out = new Map<number, number>();
  for (const [le, n] of b ?? []) out.set(le, n - (a?.get(le) ?? 0));
  return out;
}

function addInto(into: Map<number, number>, from: Map<number, number>): void {
  for (const [le, n] of from) into.set(le, (into.get(le) ?? 0) + n);
}

/**
 * Prometheus' histogram_quantile over cumulative bucket counts: linear inside the bucket the rank
 * falls in; the +Inf bucket answers its lower bound. Null with no observations.
 */
export function quantileMs(cumulative: Map<number, number>, q: number): number | null {
  const les = [...cumulative.keys()].sort((a, b) => a - b);
  const total = cumulative.get(Infinity) ?? 0;
  if (total <= 0) return null;
  const rank = q * total;
  let prevLe = 0;
  let prevCount = 0;
  for (const le of les) {
    const count = cumulative.get(le) ?? 0;
    if (count >= rank) {
      if (le === Infinity) return round(prevLe * 1000);
      const inBucket = count - prevCount;
      const frac = inBucket > 0 ? (rank - prevCount) / inBucket : 1;
      return round((prevLe + (le - prevLe) * frac) * 1000);
    }
    prevLe = le;
    prevCount = count;
  }
  return round(prevLe * 1000);
}

function round(n: number): number {
  return Math.round(n * 1000) / 1000;
}
