// The request path shared by HTTP and WebSocket: resolve the model version, check the inputs,
// queue for the batcher, pick the outputs asked for, count the outcome.
import { PerchError } from '../base/errors.js';
import type { InferenceMetrics } from '../base/metrics.js';
import type { ModelRegistry } from '../models/registry.js';
import type { ResultCache } from '../store/result-cache.js';
import { cacheKey } from '../store/result-cache-key.js';
import type { FailureLog } from './failure-log.js';
import { prepareInputs } from '../batching/prepare.js';
import type { InferParameters } from './parameters.js';
import { InferCall, type InferAnswer, type Outcomes, type Ran } from './infer-call.js';
import type { ModelInstance } from '../batching/model-instance.js';
import type { SequenceManager } from '../sequences/sequence-manager.js';
import type { ClientScope } from './client-scope.js';
import type { InferenceOutcome, InferRequest, InferResult } from './infer-types.js';

export type { InferenceOutcome, InferRequest, InferResult, RequestedOutput } from './infer-types.js';

export class InferService {
  private stopping = false;
  private readonly outcomeListeners = new Set<(o: InferenceOutcome) => void>();
  private readonly outcomes: Outcomes;

  constructor(
    private readonly registry: ModelRegistry<ModelInstance>,
    metrics: InferenceMetrics,
    private readonly sequences: SequenceManager,
    /** The persistent result cache; null when there is none (a tool, a test). */
    private readonly cache: ResultCache | null = null,
    /** Where 500s are logged; null: not logged (a tool, a test). */
    failureLog: FailureLog | null = null,
  ) {
    this.outcomes = { metrics, failureLog, listeners: this.outcomeListeners };
  }

  /** Every answered request of a known model version (the cloud agent's rollback breaker listens). */
  onOutcome(fn: (o: InferenceOutcome) => void): () => void {
    this.outcomeListeners.add(fn);
    return () => this.outcomeListeners.delete(fn);
  }

  /** After this, new requests get PERCH_ERR_SHUTTING_DOWN (in-flight ones finish). */
  stopAccepting(): void {
    this.stopping = true;
  }

  /** A stateless model: the result cache, else the batcher. */
  private async runStateless(instance: ModelInstance, req: InferRequest, params: InferParameters, scope: ClientScope | undefined): Promise<Ran> {
    if (params.sequenceId !== undefined || params.sequenceStart !== undefined || params.sequenceEnd !== undefined) {
      throw new PerchError('PERCH_ERR_INVALID_PARAMETER', `model '${instance.name}' is not a sequence model: sequence_* parameters do not apply`);
    }
    const model = instance.config;
    const prepared = prepareInputs(model, req.inputs);
    prepared.trace = req.trace;
    // A hit answers without touching the scheduler. The key is computed before the batch
    // runs: running may move the input buffers to a session thread.
    const useCache = this.cache !== null && (params.cache ?? model.cache.enabled);
    if (!useCache) return { instance, outputs: await instance.infer(prepared, { priority: params.priority, timeoutMs: params.timeoutMs, scope }), cached: false };
    // Triton's cache_hit / cache_miss times: the lookup (key included), and for a miss the insertion.
    const lookupStarted = performance.now();
    const key = cacheKey(instance.name, instance.version, prepared.inputs);
    const hit = this.cache!.get(key, instance.name, instance.version);
    const lookupMs = performance.now() - lookupStarted;
    if (hit) {
      instance.stats.cacheHit.add(1, lookupMs);
      return { instance, outputs: hit.outputs, cached: true };
    }
    const outputs = await instance.infer(prepared, { priority: params.priority, timeoutMs: params.timeoutMs, scope });
    const putStarted = performance.now();
    this.cache!.put(key, instance.name, instance.version, outputs, model.cache.ttlSeconds);
    instance.stats.cacheMiss.add(1, lookupMs + performance.now() - putStarted);
    return { instance, outputs, cached: false };
  }

  /**
   * A stateful model: the sequence manager feeds and keeps the state (never cached: state
   * changes the answer), and tells the call how it ended: no promise per stream chunk.
   */
  private runSequence(call: InferCall, instance: ModelInstance, version: number | undefined, scope: ClientScope | undefined): void {
    const params = call.params;
    if (params.sequenceId === undefined) {
      throw new PerchError('PERCH_ERR_INVALID_PARAMETER', `model '${instance.name}' is a sequence model: parameter 'sequence_id' is required`);
    }
    const req = call.req;
    this.sequences.submitTo({
      model: instance.name,
      version,
      instance,
      sequenceId: params.sequenceId,
      start: params.sequenceStart ?? false,
      end: params.sequenceEnd ?? false,
      inputs: req.inputs,
      priority: params.priority,
      timeoutMs: params.timeoutMs,
      trace: req.trace,
    }, scope, call);
  }

  /** `scope`: the client's connection; its queued work is dropped and its tied sequences end when it closes. */
  infer(req: InferRequest, scope?: ClientScope): Promise<InferResult> {
    return new Promise<InferResult>((resolve, reject) => this.inferTo(req, scope, { resolve, reject }));
  }

  /**
   * infer() without a promise of its own: `answer` is told the result or the error (a
   * PerchError) once, at once when the request is refused before it queues. The WebSocket API
   * answers from here, so a stream chunk's answer leaves from its batch's settlement
   * (docs/benchmarks.md, "Stream chunks on the main thread").
   */
  inferTo(req: InferRequest, scope: ClientScope | undefined, answer: InferAnswer): void {
    const call = new InferCall(this.outcomes, req, answer);
    try {
      const trace = req.trace;
      if (trace) trace.received(req.model);
      if (this.stopping) throw new PerchError('PERCH_ERR_SHUTTING_DOWN', 'the runtime is stopping');
      const version = parseVersion(req.version);
      // A loaded model is resolved here and now; one that loads on first use is waited for.
      if (this.registry.loadsFirst(req.model)) {
        this.registry.resolveLoaded(req.model, version).then((instance) => this.run(call, instance, version, scope), (err: unknown) => call.reject(err));
        return;
      }
      this.run(call, this.registry.resolve(req.model, version), version, scope);
    } catch (err) {
      call.reject(err);
    }
  }

  private run(call: InferCall, instance: ModelInstance, version: number | undefined, scope: ClientScope | undefined): void {
    try {
      const model = call.begin(instance);
      if (model.sequence) this.runSequence(call, instance, version, scope);
      else this.runStateless(instance, call.req, call.params, scope).then((ran) => call.resolve(ran), (err: unknown) => call.reject(err));
    } catch (err) {
      call.reject(err);
    }
  }
}

export function parseVersion(v: string | number | undefined): number | undefined {
  if (v === undefined || v === '') return undefined;
  const n = typeof v === 'number' ? v : /^[1-9]\d*$/.test(v) ? Number(v) : NaN;
  if (!Number.isSafeInteger(n) || n < 1) throw new PerchError('PERCH_ERR_VERSION_NOT_FOUND', `'${v}' is not a model version (positive integer)`);
  return n;
}
