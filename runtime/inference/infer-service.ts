// The request path shared by HTTP and WebSocket: resolve the model version, check the inputs,
// queue for the batcher, pick the outputs asked for, count the outcome.
import { PerchError, toPerchError } from '../errors.js';
import type { InferenceMetrics } from '../metrics.js';
import type { ModelRegistry } from '../models/registry.js';
import type { ResultCache } from '../store/result-cache.js';
import { cacheKey } from '../store/result-cache-key.js';
import type { Tensor } from '../tensor/tensor.js';
import { prepareInputs } from './prepare.js';
import { readParameters } from './parameters.js';

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

  constructor(
    private readonly registry: ModelRegistry,
    private readonly metrics: InferenceMetrics,
    /** The persistent result cache; null when there is none (a tool, a test). */
    private readonly cache: ResultCache | null = null,
  ) {}

  /** After this, new requests get PERCH_ERR_SHUTTING_DOWN (in-flight ones finish). */
  stopAccepting(): void {
    this.stopping = true;
  }

  async infer(req: InferRequest): Promise<InferResult> {
    let labels = { model: '', version: '' };
    try {
      if (this.stopping) throw new PerchError('PERCH_ERR_SHUTTING_DOWN', 'the runtime is stopping');
      const instance = this.registry.resolve(req.model, parseVersion(req.version));
      labels = { model: instance.name, version: String(instance.version) };
      const params = readParameters(req.parameters);
      const model = instance.config;
      const wanted = req.outputs?.length ? req.outputs : undefined;
      for (const o of wanted ?? []) {
        if (!model.outputs.some((s) => s.name === o.name)) {
          throw new PerchError('PERCH_ERR_UNKNOWN_OUTPUT', `model '${model.name}' has no output '${o.name}' (outputs: ${model.outputs.map((s) => s.name).join(', ')})`);
        }
      }
      const prepared = prepareInputs(model, req.inputs);
      // A hit answers without touching the scheduler. The key is computed before the batch
      // runs: running may move the input buffers to a session thread.
      const useCache = this.cache !== null && (params.cache ?? model.cache.enabled);
      const key = useCache ? cacheKey(instance.name, instance.version, prepared.inputs) : null;
      const hit = key !== null ? this.cache!.get(key, instance.name, instance.version) : undefined;
      let all: Tensor[];
      if (hit) {
        all = hit.outputs;
      } else {
        all = await instance.infer(prepared, { priority: params.priority, timeoutMs: params.timeoutMs });
        if (key !== null) this.cache!.put(key, instance.name, instance.version, all, model.cache.ttlSeconds);
      }
      const outputs = wanted ? wanted.map((o) => all.find((t) => t.name === o.name) as Tensor) : orderLike(model.outputs, all);
      const binary = wanted ? wanted.map((o) => o.binary ?? params.binaryDataOutput) : outputs.map(() => params.binaryDataOutput);
      this.metrics.success.inc(labels);
      return {
        model_name: instance.name,
        model_version: String(instance.version),
        ...(req.id !== undefined ? { id: req.id } : {}),
        parameters: { cached: hit !== undefined },
        outputs,
        binary,
      };
    } catch (err) {
      const e = toPerchError(err);
      this.metrics.failure.inc({ ...labels, code: e.code });
      throw e;
    }
  }
}

function orderLike(specs: ReadonlyArray<{ name: string }>, tensors: Tensor[]): Tensor[] {
  return specs.map((s) => tensors.find((t) => t.name === s.name)).filter((t): t is Tensor => t !== undefined);
}

export function parseVersion(v: string | number | undefined): number | undefined {
  if (v === undefined || v === '') return undefined;
  const n = typeof v === 'number' ? v : /^[1-9]\d*$/.test(v) ? Number(v) : NaN;
  if (!Number.isSafeInteger(n) || n < 1) throw new PerchError('PERCH_ERR_VERSION_NOT_FOUND', `'${v}' is not a model version (positive integer)`);
  return n;
}
