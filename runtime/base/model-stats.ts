// Per model version statistics as Triton's statistics extension defines them (docs/api.md,
// "Statistics"). The request path only adds to plain numbers here, where it already knows the
// times (the queue wait the batcher measures, the stacking, session and splitting times of a
// batch, the request's start): no allocation and no extra clock read per request beyond the
// one that ends it. The JSON is built only when someone asks.

/** A count and a cumulative duration. Kept in ms (floats) and answered in integer ns. */
export class StatDuration {
  count = 0;
  ms = 0;

  add(n: number, ms: number): void {
    this.count += n;
    this.ms += ms;
  }

  toJSON(): { count: number; ns: number } {
    return { count: this.count, ns: Math.round(this.ms * 1e6) };
  }
}

/** The batches of one size (items): how many ran and their cumulative times. */
export class BatchSizeStats {
  readonly computeInput = new StatDuration();
  readonly computeInfer = new StatDuration();
  readonly computeOutput = new StatDuration();
  constructor(readonly batchSize: number) {}
}

export interface ModelStatJson {
  name: string;
  version: string;
  last_inference: number;
  inference_count: number;
  execution_count: number;
  inference_stats: Record<'success' | 'fail' | 'queue' | 'compute_input' | 'compute_infer' | 'compute_output' | 'cache_hit' | 'cache_miss', { count: number; ns: number }>;
  batch_stats: Array<{ batch_size: number; compute_input: { count: number; ns: number }; compute_infer: { count: number; ns: number }; compute_output: { count: number; ns: number } }>;
}

/** The statistics of one model version, since the process started. */
export class VersionStats {
  /** performance.now() of the last answered request; 0 = none yet. */
  lastAnswered = 0;
  /** Items inferred by sessions (a request of batch n counts n; cache hits are not inferences). */
  inferenceCount = 0;
  /** Session runs (batches). */
  executionCount = 0;
  readonly success = new StatDuration();
  readonly fail = new StatDuration();
  readonly queue = new StatDuration();
  readonly computeInput = new StatDuration();
  readonly computeInfer = new StatDuration();
  readonly computeOutput = new StatDuration();
  readonly cacheHit = new StatDuration();
  readonly cacheMiss = new StatDuration();
  /** By batch size in items; sizes are bounded by the model's maxBatchSize. */
  private readonly batches = new Map<number, BatchSizeStats>();

  constructor(readonly model: string, readonly version: string) {}

  /** A request answered with a result: `ms` from its arrival, `at` = performance.now() then. */
  answered(ms: number, at: number): void {
    this.success.add(1, ms);
    this.lastAnswered = at;
  }

  /** One batch that ran: `requests` requests holding `items` items, with their queue waits. */
  ran(items: number, queuedMs: readonly number[], inputMs: number, inferMs: number, outputMs: number): void {
    const requests = queuedMs.length;
    this.inferenceCount += items;
    this.executionCount++;
    let queued = 0;
    for (let i = 0; i < requests; i++) queued += queuedMs[i] as number;
    this.queue.add(requests, queued);
    // Triton: a request's compute times are those of the batch it rode in.
    this.computeInput.add(requests, inputMs * requests);
    this.computeInfer.add(requests, inferMs * requests);
    this.computeOutput.add(requests, outputMs * requests);
    let b = this.batches.get(items);
    if (!b) this.batches.set(items, (b = new BatchSizeStats(items)));
    b.computeInput.add(1, inputMs);
    b.computeInfer.add(1, inferMs);
    b.computeOutput.add(1, outputMs);
  }

  toJSON(): ModelStatJson {
    return {
      name: this.model,
      version: this.version,
      // ms since the epoch, from the monotonic clock's origin: no wall-clock read per request.
      last_inference: this.lastAnswered === 0 ? 0 : Math.round(performance.timeOrigin + this.lastAnswered),
      inference_count: this.inferenceCount,
      execution_count: this.executionCount,
      inference_stats: {
        success: this.success.toJSON(),
        fail: this.fail.toJSON(),
        queue: this.queue.toJSON(),
        compute_input: this.computeInput.toJSON(),
        compute_infer: this.computeInfer.toJSON(),
        compute_output: this.computeOutput.toJSON(),
        cache_hit: this.cacheHit.toJSON(),
        cache_miss: this.cacheMiss.toJSON(),
      },
      batch_stats: [...this.batches.values()].sort((a, b) => a.batchSize - b.batchSize).map((b) => ({
        batch_size: b.batchSize,
        compute_input: b.computeInput.toJSON(),
        compute_infer: b.computeInfer.toJSON(),
        compute_output: b.computeOutput.toJSON(),
      })),
    };
  }
}

/**
 * Every model version's statistics, kept across reloads of the same version (Triton counts
 * "since the server started"). One entry per version ever loaded.
 */
export class ModelStatistics {
  private readonly versions = new Map<string, VersionStats>();

  /** The statistics of (model, version), made on first use; callers keep the object. */
  of(model: string, version: string): VersionStats {
    const key = `${model}\u0000${version}`;
    let s = this.versions.get(key);
    if (!s) this.versions.set(key, (s = new VersionStats(model, version)));
    return s;
  }
}
