// Prometheus metrics (docs/protocol.md section 6). Each runtime has its own Registry so several can
// live in one process (tests); the store and cloud modules register theirs on the same one.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { observeEach } from './histogram-batch.js';
import { ModelStatistics } from './model-stats.js';

// Bounds from 100 µs (a VAD chunk) to 10 s (a big OCR batch on a Pi).
const BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

const NODE_TOTAL_GAUGES = ['perch_nodejs_active_handles_total', 'perch_nodejs_active_requests_total', 'perch_nodejs_active_resources_total'];

/** A model version's label values, one object per served instance. */
export interface VersionLabels {
  readonly model: string;
  readonly version: string;
}

export class InferenceMetrics {
  readonly registry: Registry;
  /**
   * Answered requests, tallied in plain numbers per model version and handed to prom-client
   * when scraped: prom-client hashes the labels on every inc(), a cost paid once per request.
   */
  private readonly successes = new Map<string, { labels: VersionLabels; n: number }>();
  /** Items and session runs, tallied the same way per batch (issue 20: three prom-client calls a batch were ~2 µs). */
  private readonly batches = new Map<string, { labels: VersionLabels; items: number; execs: number }>();
  readonly failure: Counter<'model' | 'version' | 'code'>;
  readonly items: Counter<'model' | 'version'>;
  readonly execs: Counter<'model' | 'version'>;
  readonly queueDuration: Histogram<'model' | 'version'>;
  readonly computeDuration: Histogram<'model' | 'version'>;
  readonly queueDepth: Gauge<'model' | 'version'>;
  readonly modelReady: Gauge<'model' | 'version'>;
  /** Triton's per model version statistics (GET /v2/models/stats; docs/api.md). */
  readonly stats = new ModelStatistics();

  /** `versions`: every known model version, failed ones included, with its queue depth. */
  constructor(registry = new Registry(), versions: () => Array<{ model: string; version: string; depth: number; ready: boolean }> = () => []) {
    this.registry = registry;
    const r = [registry];
    const successes = this.successes;
    new Counter({
      name: 'perch_inference_request_success_total', help: 'Inference requests answered with a result.', labelNames: ['model', 'version'], registers: r,
      collect() {
        this.reset();
        for (const { labels, n } of successes.values()) this.inc({ model: labels.model, version: labels.version }, n);
      },
    });
    this.failure = new Counter({ name: 'perch_inference_request_failure_total', help: 'Inference requests answered with an error, by PERCH_ERR_* code.', labelNames: ['model', 'version', 'code'], registers: r });
    const batches = this.batches;
    this.items = new Counter({
      name: 'perch_inference_count_total', help: 'Items inferred (a request of batch n counts n).', labelNames: ['model', 'version'], registers: r,
      collect() {
        this.reset();
        for (const { labels, items } of batches.values()) this.inc({ model: labels.model, version: labels.version }, items);
      },
    });
    this.execs = new Counter({
      name: 'perch_inference_exec_count_total', help: 'Session runs; count_total / exec_count_total is the average batch size.', labelNames: ['model', 'version'], registers: r,
      collect() {
        this.reset();
        for (const { labels, execs } of batches.values()) this.inc({ model: labels.model, version: labels.version }, execs);
      },
    });
    this.queueDuration = new Histogram({ name: 'perch_queue_duration_seconds', help: 'Time requests waited in the scheduler queue.', labelNames: ['model', 'version'], buckets: BUCKETS, registers: r });
    this.computeDuration = new Histogram({ name: 'perch_compute_duration_seconds', help: 'Time of one session run (a whole batch), stacking and splitting included.', labelNames: ['model', 'version'], buckets: BUCKETS, registers: r });
    this.queueDepth = new Gauge({
      name: 'perch_queue_depth', help: 'Requests waiting in the scheduler queue.', labelNames: ['model', 'version'], registers: r,
      collect() {
        this.reset();
        for (const d of versions()) this.set({ model: d.model, version: d.version }, d.depth);
      },
    });
    this.modelReady = new Gauge({
      name: 'perch_model_ready', help: '1 when the model version serves, 0 when it failed or is loading.', labelNames: ['model', 'version'], registers: r,
      collect() {
        this.reset();
        for (const d of versions()) this.set({ model: d.model, version: d.version }, d.ready ? 1 : 0);
      },
    });
    collectDefaultMetrics({ register: registry, prefix: 'perch_' });
    // prom-client adds gauges named nodejs_active_{handles,requests,resources}_total, which
    // `promtool check metrics` rejects (only counters end in _total). Each is the sum over the
    // per-type gauge of the same name without _total, so nothing is lost by dropping them.
    for (const name of NODE_TOTAL_GAUGES) registry.removeSingleMetric(name);
  }

  countSuccess(labels: VersionLabels): void {
    const key = `${labels.model}\u0000${labels.version}`;
    const tally = this.successes.get(key);
    if (tally) tally.n++;
    else this.successes.set(key, { labels: { model: labels.model, version: labels.version }, n: 1 });
  }

  observeBatch(model: string, version: string, items: number, computeSeconds: number, queuedMs: readonly number[]): void {
    const key = `${model}\u0000${version}`;
    let tally = this.batches.get(key);
    if (!tally) this.batches.set(key, (tally = { labels: { model, version }, items: 0, execs: 0 }));
    tally.items += items;
    tally.execs++;
    const labels = tally.labels as { model: string; version: string };
    observeEach(this.computeDuration, labels, [computeSeconds], 1);
    observeEach(this.queueDuration, labels, queuedMs, 1000);
  }
}
