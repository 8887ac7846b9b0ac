// One inference from its arrival to its answer: the version it resolved to, the outputs it asked
// for, and how its end is recorded (metrics, Triton statistics, the failure log, the outcome
// listeners, its trace). An object with the two ends as methods, not an async function: the
// sequence manager tells it a stream chunk's result from the batcher's callback, and it answers
// the WebSocket from there, with no promise in between (docs/benchmarks.md, "Stream chunks on
// the main thread").
import { PerchError, toPerchError } from '../base/errors.js';
import type { InferenceMetrics, VersionLabels } from '../base/metrics.js';
import type { VersionStats } from '../base/model-stats.js';
import type { ModelInstance } from '../batching/model-instance.js';
import type { ResolvedModelConfig } from '../models/resolve-config.js';
import type { Tensor } from '../tensor/tensor.js';
import type { FailureLog } from './failure-log.js';
import type { InferenceOutcome, InferRequest, InferResult, RequestedOutput } from './infer-types.js';
import { readParameters, type InferParameters } from './parameters.js';

/** Told how one inference ended, once (InferService.inferTo); a promise's resolve and reject fit. */
export interface InferAnswer {
  resolve(result: InferResult): void;
  reject(err: PerchError): void;
}

/** Where the end of every inference is recorded (the infer service's). */
export interface Outcomes {
  readonly metrics: InferenceMetrics;
  readonly failureLog: FailureLog | null;
  readonly listeners: ReadonlySet<(o: InferenceOutcome) => void>;
}

/** What running it gave. */
export interface Ran {
  instance: ModelInstance;
  outputs: Tensor[];
  /** Answered from the result cache (absent: a sequence's answer, never cached). */
  cached?: boolean;
}

const NO_PARAMETERS: InferParameters = Object.freeze({});

export class InferCall {
  private labels: VersionLabels | null = null;
  private stats: VersionStats | null = null;
  private readonly started = performance.now();
  private model: ResolvedModelConfig | null = null;
  private wanted: RequestedOutput[] | undefined = undefined;
  /** The request's parameters, read once its version is known (begin). */
  params: InferParameters = NO_PARAMETERS;

  /** Null once answered: a call is answered once (the field itself, not a flag beside it, per stream chunk). */
  private answer: InferAnswer | null;

  constructor(
    private readonly outcomes: Outcomes,
    readonly req: InferRequest,
    answer: InferAnswer,
  ) {
    this.answer = answer;
  }

  /** It runs on `instance`: its parameters are read and the outputs it asks for checked. */
  begin(instance: ModelInstance): ResolvedModelConfig {
    this.labels = instance.labels;
    this.stats = instance.stats;
    this.params = readParameters(this.req.parameters);
    const model = instance.config;
    this.model = model;
    const wanted = this.req.outputs?.length ? this.req.outputs : undefined;
    for (const o of wanted ?? []) {
      if (!model.outputs.some((s) => s.name === o.name)) {
        throw new PerchError('PERCH_ERR_UNKNOWN_OUTPUT', `model '${model.name}' has no output '${o.name}' (outputs: ${model.outputs.map((s) => s.name).join(', ')})`);
      }
    }
    this.wanted = wanted;
    return model;
  }

  /**
   * It ran: the outputs asked for are picked, the success counted, and the answer given. What the
   * answer throws (a send that fails) is logged here and goes no further: the caller (the sequence
   * manager's callback) would take it for the call's failure and answer it a second time.
   */
  resolve(ran: Ran): void {
    const answer = this.answer;
    if (answer === null) return this.late(new Error('the result came after the call was answered'));
    let result: InferResult;
    try {
      result = this.result(ran);
    } catch (err) {
      this.reject(err);
      return;
    }
    this.answer = null;
    try {
      answer.resolve(result);
    } catch (err) {
      this.late(err);
    }
  }

  /** It failed (or was refused): counted, logged, its trace ended, and the error given (once, as resolve). */
  reject(err: unknown): void {
    const answer = this.answer;
    if (answer === null) return this.late(err);
    this.answer = null;
    const e = toPerchError(err);
    const labels = this.labels;
    const o = this.outcomes;
    o.metrics.failure.inc({ model: labels?.model ?? '', version: labels?.version ?? '', code: e.code });
    o.failureLog?.report(labels?.model ?? this.req.model, labels?.version ?? String(this.req.version ?? ''), e);
    const trace = this.req.trace;
    if (trace) trace.end(e.code, e.message);
    const failedMs = performance.now() - this.started;
    this.stats?.fail.add(1, failedMs);
    if (labels && o.listeners.size) tell(o, { model: labels.model, version: Number(labels.version), ok: false, code: e.code, latencyMs: failedMs });
    try {
      answer.reject(e);
    } catch (thrown) {
      this.late(thrown);
    }
  }

  /** Perch's bug after the answer (its callback threw, or the call ended again): logged, not told twice. */
  private late(err: unknown): void {
    const labels = this.labels;
    this.outcomes.failureLog?.afterAnswer(labels?.model ?? this.req.model, labels?.version ?? String(this.req.version ?? ''), err);
  }

  private result(ran: Ran): InferResult {
    const labels = ran.instance.labels;
    const stats = ran.instance.stats;
    this.labels = labels;
    this.stats = stats;
    const params = this.params;
    const wanted = this.wanted;
    const all = ran.outputs;
    const outputs = wanted ? wanted.map((o) => all.find((t) => t.name === o.name) as Tensor) : pick(clientOutputs(this.model as ResolvedModelConfig), all);
    const binary = wanted ? wanted.map((o) => o.binary ?? params.binaryDataOutput) : outputs.map(() => params.binaryDataOutput);
    const o = this.outcomes;
    o.metrics.countSuccess(labels);
    const ended = performance.now();
    stats.answered(ended - this.started, ended);
    if (o.listeners.size) tell(o, { model: labels.model, version: Number(labels.version), ok: true, latencyMs: ended - this.started });
    const trace = this.req.trace;
    if (trace) trace.answering(labels.version, ran.cached ?? false);
    const result: InferResult = {
      model_name: ran.instance.name,
      model_version: labels.version,
      parameters: { cached: ran.cached ?? false },
      outputs,
      binary,
    };
    if (this.req.id !== undefined) result.id = this.req.id;
    return result;
  }
}

function tell(o: Outcomes, outcome: InferenceOutcome): void {
  for (const fn of o.listeners) fn(outcome);
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
