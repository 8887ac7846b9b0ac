// One served version of a model: its sessions (executors), its resolved config and its batcher.
// A version swap makes a new instance; the old one drains (requests already queued or running
// finish on it) and then releases its sessions. Opening the version is models/load-version.ts;
// stacking a batch into feeds and splitting the outputs back is batch-tensors.ts.
import { PerchError } from '../base/errors.js';
import type { InferenceMetrics, VersionLabels } from '../base/metrics.js';
import type { VersionStats } from '../base/model-stats.js';
import type { Tracing } from '../base/tracing.js';
import type { WorkMeter } from '../base/work-meter.js';
import { BatchTrace } from './batch-trace.js';
import { loadVersion, type LoadDeps } from '../models/load-version.js';
import type { ModelConfigFile, ModelOverrides } from '../models/model-config.js';
import { overridesIssue, withOverrides } from '../models/overrides.js';
import type { ResolvedModelConfig } from '../models/resolve-config.js';
import type { Executor } from '../sessions/executor.js';
import { byteLength, type Tensor } from '../tensor/tensor.js';
import { BufferPool, type PoolStats } from '../tensor/buffer-pool.js';
import { createHash } from 'node:crypto';
import { dirname } from 'node:path';
import { resolveModelConfig } from '../models/resolve-config.js';
import { splitOutputs, stackInputs } from './batch-tensors.js';
import { Batcher, type BatchRun, type CloseScope, type SubmitOptions } from './batcher.js';
import type { PreparedRequest } from './prepare.js';

export interface InstanceDeps extends LoadDeps {
  metrics: InferenceMetrics;
  /** OpenTelemetry (docs/observability.md); absent or off: batches are not traced. */
  tracing?: Tracing;
  /** Told the input bytes of every batch run: the idle collector's view of inference (base/work-meter.ts). */
  work?: WorkMeter;
  /**
   * Opens one runner of a pipeline model (model.json `pipeline`; docs/models.md, "Pipelines"),
   * given by the composition root. Without it, a pipeline model fails to load.
   */
  openPipeline?: (name: string, dir: string, file: ModelConfigFile) => Executor;
}

export interface InferOptions {
  priority?: number | undefined;
  timeoutMs?: number | null | undefined;
  /** The client's connection: queued work is dropped when it closes. */
  scope?: CloseScope | undefined;
}

export class ModelInstance {
  readonly batcher: Batcher<PreparedRequest, Tensor[]>;
  /** Batches handed to each executor and not yet finished (lookahead allows two). */
  /**
   * By index into `executors`. An array, not a Map: the batcher asks idleExecutors() on every
   * submit, and iterating a Map allocated an entry per session each time (docs/benchmarks.md,
   * "Stream chunks on the main thread").
   */
  private readonly inFlight: number[];
  private retiring: Promise<void> | null = null;
  /**
   * Some session opens on demand and has not opened yet. Cleared for good once every one has:
   * demandMore() runs on every busy dispatch, and after that it need not walk the sessions.
   */
  private unopened: boolean;
  /** Live sequences that started on this version and stay on it until they end. */
  private pins = 0;
  private unpinned: (() => void) | null = null;
  /** This version's metric labels, made once (requests count against them). */
  readonly labels: VersionLabels;
  /** This version's Triton statistics (kept across reloads of the same version). */
  readonly stats: VersionStats;
  /**
   * Stacked batches' buffers, used again once a session thread hands them back with its result
   * (tensor/buffer-pool.ts: why, and why nothing is overwritten while it is read).
   */
  private readonly pool: BufferPool;

  private constructor(
    readonly name: string,
    readonly version: number,
    private resolved: ResolvedModelConfig,
    /** SHA-256 (hex) of the model file this instance serves. */
    readonly sha256: string,
    /** model.json before overrides, to re-apply new overrides from. */
    private readonly file: ModelConfigFile,
    private readonly executors: Executor[],
    readonly warmedUp: boolean,
    private readonly deps: InstanceDeps,
  ) {
    this.inFlight = executors.map(() => 0);
    this.unopened = executors.some((e) => e.opened === false);
    this.labels = Object.freeze({ model: name, version: String(version) });
    this.stats = deps.metrics.stats.of(name, String(version));
    this.pool = new BufferPool(deps.clock);
    const config = resolved;
    const b = config.batching;
    this.batcher = new Batcher(
      {
        maxBatchSize: config.maxBatchSize,
        maxQueueDelayMs: b.maxQueueDelayMs,
        preferredBatchSizes: b.preferredBatchSizes,
        maxQueueSize: b.maxQueueSize,
        maxQueueBytes: b.maxQueueBytes,
        maxBatchBytes: b.maxBatchBytes,
        priorityLevels: b.priorityLevels,
        concurrency: executors.length,
        // A session thread queues what it is handed; an inline session runs it on the spot.
        lookahead: file.session.executor === 'worker',
      },
      (run) => this.runBatch(run),
      deps.clock,
      () => this.idleExecutors(),
    );
  }

  /** Opens the version (models/load-version.ts) and serves it behind a new batcher. */
  static async load(name: string, version: number, path: string, file: ModelConfigFile, deps: InstanceDeps, overrides?: ModelOverrides): Promise<ModelInstance> {
    if (file.pipeline) return ModelInstance.loadPipeline(name, version, dirname(dirname(path)), file, deps, overrides);
    const v = await loadVersion(name, path, file, deps, overrides);
    return new ModelInstance(name, version, v.config, v.sha256, file, v.executors, v.warmedUp, deps);
  }

  /**
   * A pipeline: `pipeline.concurrency` runners, so that many requests walk the steps at once
   * (their inner model calls then batch together). Not warmed up: its inner models are.
   */
  private static loadPipeline(name: string, version: number, dir: string, file: ModelConfigFile, deps: InstanceDeps, overrides?: ModelOverrides): ModelInstance {
    const pipeline = file.pipeline;
    if (!pipeline || !deps.openPipeline) throw new PerchError('PERCH_ERR_MODEL_LOAD_FAILED', `model '${name}': pipelines are not served here`);
    const open = deps.openPipeline;
    const executors = Array.from({ length: pipeline.concurrency }, () => open(name, dir, file));
    const config = resolveModelConfig(name, withOverrides(file, overrides), executors[0] as Executor);
    const sha256 = createHash('sha256').update(JSON.stringify(file)).digest('hex');
    return new ModelInstance(name, version, config, sha256, file, executors, false, deps);
  }

  get config(): ResolvedModelConfig {
    return this.resolved;
  }

  overridesIssue(o: ModelOverrides | undefined): string | null {
    return overridesIssue(this.file, o);
  }

  /** New batching/cache settings, applied to this running version (live config). */
  applyOverrides(o: ModelOverrides | undefined): void {
    const f = withOverrides(this.file, o);
    this.resolved = { ...this.resolved, batching: f.batching, cache: f.cache };
    this.batcher.configure({
      maxQueueDelayMs: f.batching.maxQueueDelayMs,
      preferredBatchSizes: f.batching.preferredBatchSizes,
      maxQueueSize: f.batching.maxQueueSize,
      maxQueueBytes: f.batching.maxQueueBytes,
      maxBatchBytes: f.batching.maxBatchBytes,
      priorityLevels: f.batching.priorityLevels,
    });
  }

  /** The stacked buffers' pool: how often a batch used one again (tests, benchmarks). */
  get poolStats(): PoolStats {
    return this.pool.stats;
  }

  get providers(): string[] {
    return (this.executors[0] as Executor).providers;
  }

  get warnings(): string[] {
    return (this.executors[0] as Executor).warnings;
  }

  /** Times its sessions were opened again to give back their arenas (sessions/session-renewal.ts), since load. */
  get renewals(): number {
    return this.executors.reduce((n, e) => n + (e.renewals ?? 0), 0);
  }

  infer(req: PreparedRequest, opts: InferOptions = {}): Promise<Tensor[]> {
    return this.batcher.submit(req, this.submitOptions(req, opts));
  }

  /** infer() with callbacks instead of a promise (batcher.ts enqueue): a refusal is returned. */
  enqueue(req: PreparedRequest, opts: InferOptions, resolve: (outputs: Tensor[]) => void, reject: (e: Error) => void): PerchError | null {
    return this.batcher.enqueue(req, this.submitOptions(req, opts), resolve, reject);
  }

  private submitOptions(req: PreparedRequest, opts: InferOptions): SubmitOptions {
    return {
      items: req.items,
      groupKey: req.groupKey,
      priority: opts.priority ?? this.config.batching.defaultPriority,
      timeoutMs: opts.timeoutMs ?? null,
      scope: opts.scope,
      bytes: inputBytes(req.inputs),
    };
  }

  /** A sequence holds this version until it ends (a swap does not move it). */
  pin(): void {
    this.pins++;
  }

  unpin(): void {
    this.pins--;
    if (this.pins === 0 && this.unpinned) this.unpinned();
  }

  get pinned(): number {
    return this.pins;
  }

  /**
   * Waits for the sequences pinned to this version to end, lets queued and running work finish,
   * then releases the sessions. Idempotent.
   */
  retire(): Promise<void> {
    const sequencesEnded = this.pins === 0 ? Promise.resolve() : new Promise<void>((resolve) => (this.unpinned = resolve));
    this.retiring ??= sequencesEnded.then(() => this.batcher.drain()).then(async () => {
      this.batcher.close(new PerchError('PERCH_ERR_MODEL_NOT_READY', `model '${this.name}' version ${this.version} was unloaded`));
      await Promise.allSettled(this.executors.map((e) => e.close()));
      this.pool.clear();
    });
    return this.retiring;
  }

  private async runBatch(run: BatchRun<PreparedRequest>): Promise<Tensor[][]> {
    const slot = this.leastBusy();
    const executor = this.executors[slot] as Executor;
    const items = run.payloads.reduce((n, r) => n + r.items, 0);
    // leastBusy() counted this batch: more than one means the session holds another (lookahead).
    const trace = this.deps.tracing?.enabled ? BatchTrace.start(this.deps.tracing, this.name, this.version, run, items, (this.inFlight[slot] as number) > 1) : null;
    try {
      const stackStarted = performance.now();
      const feeds = stackInputs(this.config, run.payloads, this.pool);
      const stackMs = performance.now() - stackStarted;
      if (this.deps.work) this.deps.work.add(inputBytes(feeds));
      const { outputs, runMs, returned, owned } = await executor.run(feeds, run.scope ?? undefined);
      if (returned) for (const b of returned) this.pool.give(b);
      const splitStarted = performance.now();
      const split = splitOutputs(this.config, run.payloads, outputs, owned === true);
      const splitEnded = performance.now();
      const splitMs = splitEnded - splitStarted;
      trace?.ran(stackStarted, stackMs, runMs, splitStarted, splitEnded);
      // The session's own run time (measured where it ran) plus stacking and splitting: not the
      // wait of a lookahead batch behind the one before it, nor the thread hop.
      const computeMs = stackMs + runMs + splitMs;
      this.deps.metrics.observeBatch(this.name, String(this.version), items, computeMs / 1000, run.queuedMs);
      this.stats.ran(items, run.queuedMs, stackMs, runMs, splitMs);
      return split;
    } catch (err) {
      trace?.failed(err);
      throw err;
    } finally {
      this.inFlight[slot] = (this.inFlight[slot] as number) - 1;
    }
  }

  /**
   * Sessions with no batch at all: the batcher fills these first. A session whose thread is
   * being started again does not count while another one can take work.
   */
  private idleExecutors(): number {
    const anyAvailable = this.anyAvailable();
    let n = 0;
    for (let i = 0; i < this.executors.length; i++) {
      if (this.inFlight[i] === 0 && ((this.executors[i] as Executor).available || !anyAvailable)) n++;
    }
    if (n === 0 && this.batcher.depth > 0) this.demandMore();
    return n;
  }

  /** Some session of this version opens on demand and is not open yet (docs/models.md). */
  get sessionsToOpen(): boolean {
    return this.unopened;
  }

  /** Work waits while every open session is busy: sessions opened on demand open now. */
  private demandMore(): void {
    if (!this.unopened) return;
    let left = false;
    for (const e of this.executors) {
      if (e.opened === false) {
        left = true;
        e.demand?.();
      }
    }
    // An open session stays open (on-demand-executor.ts keeps it until close).
    this.unopened = left;
  }

  /**
   * The session with the fewest batches (its index), now counted as holding one more. Available
   * sessions first: one being restarted would hold the batch until its new thread is up (and one
   * that could not be restarted fails at once, so it would always look least busy).
   */
  private leastBusy(): number {
    const anyAvailable = this.anyAvailable();
    let best = -1;
    let fewest = Infinity;
    for (let i = 0; i < this.executors.length; i++) {
      const n = this.inFlight[i] as number;
      if (n < fewest && ((this.executors[i] as Executor).available || !anyAvailable)) {
        best = i;
        fewest = n;
      }
    }
    if (best < 0) throw new PerchError('PERCH_ERR_INTERNAL', 'batch dispatched with no session');
    if (fewest > 0) this.demandMore(); // a lookahead batch: the session it goes to is busy
    this.inFlight[best] = fewest + 1;
    return best;
  }

  private anyAvailable(): boolean {
    for (const e of this.executors) if (e.available) return true;
    return false;
  }
}

/** What a request's input tensors hold: its weight in the queue. */
function inputBytes(inputs: readonly Tensor[]): number {
  let n = 0;
  for (const t of inputs) n += byteLength(t);
  return n;
}
