// A pipeline model (docs/models.md, "Pipelines") served as an executor of its own model
// instance: it gets a batcher, a queue bound, metrics and client scopes like any model, and
// each "run" walks the steps of model.json. Processing steps go to the processing threads;
// `model` steps call other models through their own batchers (ModelCaller). A failing step
// answers with its name in the message and a coded error.
import { PerchError, toPerchError } from '../base/errors.js';
import { fullCollection } from '../base/full-collection.js';
import type { PipelineConfig, PipelineStep } from '../models/pipeline-config.js';
import type { TensorSpecInput } from '../models/model-config.js';
import type { Executor, ExecutorResult, OrtTensorMetadata, RunScope } from '../sessions/executor.js';
import { ortType } from '../tensor/datatypes.js';
import { concatAlongAxis, splitAlongAxis, type Tensor } from '../tensor/tensor.js';
import { folderFile } from '../models/folder-file.js';
import type { ProcessingPool } from '../processing/pool.js';
import { isProcessingStep, stepInputs, stepOutputs } from '../processing/step-io.js';
import type { ModelCaller } from './model-caller.js';
import type { PixelBudget } from './pixel-budget.js';
import { vadSegments } from './vad-segments.js';

export interface PipelineDeps {
  pool: ProcessingPool;
  call: ModelCaller;
  /** Decoded pixels in flight, process-wide (models.maxPixelsInFlight). */
  pixels: PixelBudget;
}

type ModelStep = Extract<PipelineStep, { op: 'model' }>;

/** What a run took from the pixel budget, and how to give each part back. */
interface Taken { pixels: number; giveBack: Array<() => void> }

/** A run that decoded this many pixels (12 MB of RGB) asks the processing threads to collect after it. */
const COLLECT_AFTER_PIXELS = 4_000_000;

/** This thread's full collection (null if V8 refuses it). */
const collectHere = fullCollection();

function metadata(t: TensorSpecInput): OrtTensorMetadata {
  return { name: t.name, isTensor: true, type: ortType(t.datatype), shape: t.dims };
}

/** Checks, at load, that every step reads a value that exists by then and that every output is made. */
export function checkPipeline(name: string, p: PipelineConfig, inputs: readonly TensorSpecInput[], outputs: readonly TensorSpecInput[]): void {
  const known = new Set(inputs.map((t) => t.name));
  const stepNames = new Set<string>();
  // A run takes its image's pixels from the process-wide budget and holds them to its answer
  // (pixel-budget.ts): a second decode in the same run could wait for room that only its own
  // answer gives back, with every other run doing the same. One image per pipeline.
  const decodes = p.steps.filter((s) => s.op === 'image.decode');
  if (decodes.length > 1) {
    throw new PerchError('PERCH_ERR_MODEL_CONFIG_INVALID', `model '${name}': steps ${decodes.map((s) => `'${s.name}'`).join(', ')} each decode an image; a pipeline decodes at most one (models.maxPixelsInFlight is taken once per request)`);
  }
  for (const s of p.steps) {
    if (stepNames.has(s.name)) throw new PerchError('PERCH_ERR_MODEL_CONFIG_INVALID', `model '${name}': two steps are named '${s.name}'`);
    stepNames.add(s.name);
    for (const v of stepInputs(s)) {
      if (!known.has(v)) throw new PerchError('PERCH_ERR_MODEL_CONFIG_INVALID', `model '${name}': step '${s.name}' reads '${v}', which no input or earlier step gives`);
    }
    for (const v of stepOutputs(s)) known.add(v);
  }
  for (const o of outputs) {
    if (!known.has(o.name)) throw new PerchError('PERCH_ERR_MODEL_CONFIG_INVALID', `model '${name}': output '${o.name}' is made by no step`);
  }
}

/** Calls a model once, or once per item along axis 0, all at once (the items batch together). */
async function runModelStep(s: ModelStep, values: Map<string, Tensor>, call: ModelCaller): Promise<Tensor[]> {
  const feeds = Object.entries(s.inputs).map(([input, from]) => ({ ...(values.get(from) as Tensor), name: input }));
  const wanted = Object.keys(s.outputs);
  const pick = (out: Tensor[]): Tensor[] => wanted.map((w) => {
    const t = out.find((o) => o.name === w);
    if (!t) throw new PerchError('PERCH_ERR_PIPELINE_STEP_FAILED', `model '${s.model}' gave no output '${w}'`);
    return t;
  });
  if (!s.each) return pick(await call(s.model, feeds));
  const n = feeds[0]?.shape[0] ?? 0;
  if (n === 0) return wanted.map((w) => ({ name: w, datatype: 'FP32', shape: [0], data: new Float32Array(0) }));
  const perItem = feeds.map((f) => splitAlongAxis(f, 0, new Array<number>(n).fill(1)));
  const answers = await Promise.all(Array.from({ length: n }, (_, i) => call(s.model, perItem.map((parts) => parts[i] as Tensor)).then(pick)));
  return wanted.map((_, k) => concatAlongAxis(answers.map((a) => a[k] as Tensor), 0));
}

/** Watches a run's client scope; aborts its signal when the client goes away. */
class GoneWatch {
  private readonly controller = new AbortController();

  constructor(private readonly scope: RunScope) {
    scope.watch(this);
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  scopeClosed(): void {
    this.controller.abort();
  }

  stop(): void {
    this.scope.unwatch(this);
  }
}

export class PipelineExecutor implements Executor {
  readonly inputs: OrtTensorMetadata[];
  readonly outputs: OrtTensorMetadata[];
  readonly providers = ['pipeline'];
  readonly warnings: string[] = [];
  readonly available = true;

  constructor(
    private readonly name: string,
    /** The model's folder: keys and labels files are read from it. */
    private readonly dir: string,
    private readonly pipeline: PipelineConfig,
    inputs: readonly TensorSpecInput[],
    outputs: readonly TensorSpecInput[],
    private readonly deps: PipelineDeps,
  ) {
    checkPipeline(name, pipeline, inputs, outputs);
    // The files steps read are checked now, so a bad one fails the load, not each request.
    for (const s of pipeline.steps) {
      const file = s.op === 'ctc.greedy' ? s.keys : s.op === 'classify.topk' ? s.labels : null;
      if (file === null) continue;
      try {
        folderFile(dir, file);
      } catch (err) {
        throw new PerchError('PERCH_ERR_MODEL_CONFIG_INVALID', `model '${name}', step '${s.name}': ${(err as Error).message}`, { cause: err });
      }
    }
    this.inputs = inputs.map(metadata);
    this.outputs = outputs.map(metadata);
  }

  async run(feeds: Tensor[], scope?: RunScope): Promise<ExecutorResult> {
    const started = performance.now();
    const values = new Map<string, Tensor>(feeds.map((t) => [t.name, t]));
    // The pixels this run took for its decoded images: given back with its answer, or its error.
    const taken: Taken = { pixels: 0, giveBack: [] };
    // The client's going away stops the run between steps and takes it out of the pixel line.
    const gone = scope ? new GoneWatch(scope) : null;
    try {
      for (const s of this.pipeline.steps) {
        if (gone?.signal.aborted) throw new PerchError('PERCH_ERR_CLIENT_GONE', `model '${this.name}': the client closed its connection before step '${s.name}'; the run stopped`);
        let made: Tensor[];
        try {
          if (s.op === 'image.decode') made = await this.decode(s, values.get(s.from) as Tensor, taken, gone?.signal);
          else if (isProcessingStep(s)) made = await this.deps.pool.run(s, stepInputs(s).map((v) => values.get(v) as Tensor), this.dir);
          else if (s.op === 'model') made = await runModelStep(s, values, this.deps.call);
          else made = [await vadSegments(s, values.get(s.from) as Tensor, this.deps.call)];
        } catch (err) {
          const e = toPerchError(err);
          const code = e.code === 'PERCH_ERR_INTERNAL' ? 'PERCH_ERR_PIPELINE_STEP_FAILED' : e.code;
          throw new PerchError(code, `model '${this.name}', step '${s.name}' (${s.op}${s.op === 'model' || s.op === 'vad.segments' ? ` ${s.model}` : ''}): ${e.message}`, { cause: err });
        }
        stepOutputs(s).forEach((v, i) => values.set(v, { ...(made[i] as Tensor), name: v }));
      }
      const outputs = this.outputs.map((o) => values.get(o.name) as Tensor);
      return { outputs, runMs: performance.now() - started };
    } finally {
      gone?.stop();
      values.clear();
      for (const give of taken.giveBack) give();
      // What a big picture left on the processing threads is freed now, not at their next
      // collection, which may be many pictures later (pool.ts collect). This thread held a view
      // of its shared memory too (`values`): a SharedArrayBuffer is freed once every thread's
      // view of it is collected, and this thread's small heap was not collected between
      // pictures, so eight 39.7 Mpx images to `ocr`, one at a time under the pixel budget, still
      // peaked at 1.3-1.5 GB; collecting here too, 643 MB (docs/models.md "Decoded pixels in
      // flight"). It costs this thread 33-97 ms per picture of 4 Mpx and more (measured at load
      // 17), against the seconds such a picture takes; a minor collection did not free them.
      if (taken.pixels >= COLLECT_AFTER_PIXELS) {
        this.deps.pool.collect();
        collectHere?.();
      }
    }
  }

  /**
   * Reads the image's size from its header on a processing thread, takes that many pixels from
   * the process-wide budget (waiting for room in order), then decodes (docs/models.md, "Pipelines").
   */
  private async decode(s: Extract<PipelineStep, { op: 'image.decode' }>, input: Tensor, taken: Taken, signal: AbortSignal | undefined): Promise<Tensor[]> {
    const pixels = await this.deps.pool.probe(s, input);
    taken.giveBack.push(await this.deps.pixels.take(pixels, `input '${input.name}'`, signal));
    taken.pixels += pixels;
    return this.deps.pool.run(s, [input], this.dir);
  }

  async close(): Promise<void> {
    // Nothing of its own: the processing threads and the inner models belong to the runtime.
  }
}
