// The request path shared by HTTP and WebSocket: resolve the model version, check the inputs,
// queue for the batcher, pick the outputs asked for, count the outcome.
import { PerchError, toPerchError } from '../base/errors.js';
import type { InferenceMetrics, VersionLabels } from '../base/metrics.js';
import type { VersionStats } from '../base/model-stats.js';
import type { RequestTrace } from '../base/request-trace.js';
import type { ModelRegistry } from '../models/registry.js';
import type { ResultCache } from '../store/result-cache.js';
import { cacheKey } from '../store/result-cache-key.js';
import type { Tensor } from '../tensor/tensor.js';
import type { FailureLog } from './failure-log.js';
import { prepareInputs } from '../batching/prepare.js';
import { readParameters, type InferParameters } from './parameters.js';
import type { ModelInstance } from '../batching/model-instance.js';
import type { ResolvedModelConfig } from '../models/resolve-config.js';
import type { SequenceManager } from '../sequences/sequence-manager.js';
import type { ClientScope } from './client-scope.js';
import type { ErrorCode } from '../base/errors.js';

/** How one inference ended, told to onOutcome listeners (the rollback circuit breaker). */
export interface InferenceOutcome {
  model: string;
  version: number;
  ok: boolean;
  code?: ErrorCode;
  /** From the request's arrival to its answer (queue + compute), for the device's in-service health. */
  latencyMs?: number;
}

export interface RequestedOutput {
  name: string;
  /** Triton: this output as binary data (true) or JSON (false); undefined = the transport's default. */
  binary?: boolean | undefined;
}

export interface InferRequest {
  model: string;
  version?: string | number | undefined;
  id?: string | undefined;
  inputs: Tensor[];
  outputs?: RequestedOutput[] | undefined;
  parameters?: Record<string, unknown> | undefined;
  /** Its spans, made by the API while tracing is on (base/request-trace.ts); the API ends it. */
  trace?: RequestTrace | undefined;
}

export interface InferResult {
  model_name: string;
  model_version: string;
  id?: string;
  parameters: Record<string, unknown>;
  outputs: Tensor[];
  /** How each output should be encoded: true = binary, false = JSON, undefined = transport default. */
  binary: Array<boolean | undefined>;
}

export class InferService {
  private stopping = false;
  private readonly outcomeListeners = new Set<(o: InferenceOutcome) => void>();

  constructor(
    private readonly registry: ModelRegistry<ModelInstance>,
    private readonly metrics: InferenceMetrics,
    private readonly sequences: SequenceManager,
    /** The persistent result cache; null when there is none (a tool, a test). */
    private readonly cache: ResultCache | null = null,
    /** Where 500s are logged; null: not logged (a tool, a test). */
    private readonly failureLog: FailureLog | null = null,
  ) {}

  /** Every answered request of a known model version (the cloud agent's rollback breaker listens). */
  onOutcome(fn: (o: InferenceOutcome) => void): () => void {
    this.outcomeListeners.add(fn);
    return () => this.outcomeListeners.delete(fn);
  }

  private tell(o: InferenceOutcome): void {
    for (const fn of this.outcomeListeners) fn(o);
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
   * changes the answer). Not async: the caller awaits the manager's own promise, one promise
   * and one microtask turn fewer per stream chunk (docs/benchmarks.md, issue 20); a refusal
   * here is thrown inside the caller's try, as a rejection was.
   */
  private runSequence(instance: ModelInstance, version: number | undefined, req: InferRequest, params: InferParameters, scope: ClientScope | undefined): Promise<Ran> {
    if (params.sequenceId === undefined) {
      throw new PerchError('PERCH_ERR_INVALID_PARAMETER', `model '${instance.name}' is a sequence model: parameter 'sequence_id' is required`);
    }
    return this.sequences.submit({
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
    }, scope);
  }

  /** `scope`: the client's connection; its queued work is dropped and its tied sequences end when it closes. */
  async infer(req: InferRequest, scope?: ClientScope): Promise<InferResult> {
    let labels: VersionLabels | null = null;
    let stats: VersionStats | null = null;
    const started = performance.now();
    const trace = req.trace;
    try {
      if (trace) trace.received(req.model);
      if (this.stopping) throw new PerchError('PERCH_ERR_SHUTTING_DOWN', 'the runtime is stopping');
      const version = parseVersion(req.version);
      // A loaded model is resolved here and now; one that loads on first use is waited for.
      const instance = this.registry.loadsFirst(req.model) ? await this.registry.resolveLoaded(req.model, version) : this.registry.resolve(req.model, version);
      labels = instance.labels;
      stats = instance.stats;
      const params = readParameters(req.parameters);
      const model = instance.config;
      const wanted = req.outputs?.length ? req.outputs : undefined;
      for (const o of wanted ?? []) {
        if (!model.outputs.some((s) => s.name === o.name)) {
          throw new PerchError('PERCH_ERR_UNKNOWN_OUTPUT', `model '${model.name}' has no output '${o.name}' (outputs: ${model.outputs.map((s) => s.name).join(', ')})`);
        }
      }
      const ran = model.sequence ? await this.runSequence(instance, version, req, params, scope) : await this.runStateless(instance, req, params, scope);
      labels = ran.instance.labels;
      stats = ran.instance.stats;
      const all = ran.outputs;
      const outputs = wanted ? wanted.map((o) => all.find((t) => t.name === o.name) as Tensor) : pick(clientOutputs(model), all);
      const binary = wanted ? wanted.map((o) => o.binary ?? params.binaryDataOutput) : outputs.map(() => params.binaryDataOutput);
      this.metrics.countSuccess(labels);
      const ended = performance.now();
      stats.answered(ended - started, ended);
      if (this.outcomeListeners.size) this.tell({ model: labels.model, version: Number(labels.version), ok: true, latencyMs: ended - started });
      if (trace) trace.answering(labels.version, ran.cached ?? false);
      const result: InferResult = {
        model_name: ran.instance.name,
        model_version: labels.version,
        parameters: { cached: ran.cached ?? false },
        outputs,
        binary,
      };
      if (req.id !== undefined) result.id = req.id;
      return result;
    } catch (err) {
      const e = toPerchError(err);
      this.metrics.failure.inc({ model: labels?.model ?? '', version: labels?.version ?? '', code: e.code });
      this.failureLog?.report(labels?.model ?? req.model, labels?.version ?? String(req.version ?? ''), e);
      if (trace) trace.end(e.code, e.message);
      const failedMs = performance.now() - started;
      stats?.fail.add(1, failedMs);
      if (labels && this.outcomeListeners.size) this.tell({ model: labels.model, version: Number(labels.version), ok: false, code: e.code, latencyMs: failedMs });
      throw e;
    }
  }
}

interface Ran {
  instance: ModelInstance;
  outputs: Tensor[];
  /** Answered from the result cache (absent: a sequence's answer, never cached). */
  cached?: boolean;
}

/** Per model config: the outputs a client gets by default. State outputs feed the next request
 * of a sequence, so the client gets them only if it asks. Worked out once, not per request. */
const defaultOutputs = new WeakMap<ResolvedModelConfig, string[]>();

function clientOutputs(model: ResolvedModelConfig): string[] {
  let names = defaultOutputs.get(model);
  if (!names) {
    const state = new Set(model.sequence?.state.map((s) => s.output) ?? []);
    names = model.outputs.map((o) => o.name).filter((n) => !state.has(n));
    defaultOutputs.set(model, names);
  }
  return names;
}

/** The named tensors, in the order of `names` (a name the session did not return is left out). */
function pick(names: readonly string[], tensors: readonly Tensor[]): Tensor[] {
  const out: Tensor[] = [];
  for (const n of names) {
    const t = tensors.find((x) => x.name === n);
    if (t) out.push(t);
  }
  return out;
}

export function parseVersion(v: string | number | undefined): number | undefined {
  if (v === undefined || v === '') return undefined;
  const n = typeof v === 'number' ? v : /^[1-9]\d*$/.test(v) ? Number(v) : NaN;
  if (!Number.isSafeInteger(n) || n < 1) throw new PerchError('PERCH_ERR_VERSION_NOT_FOUND', `'${v}' is not a model version (positive integer)`);
  return n;
}
