// Building blocks for robustness tests: model.json files for the real models, a provably slow
// request (PP-OCR det on a large image), and a view of a model's scheduler inside a test runtime.
import { randomFp32 } from './models.js';
import type { TestRuntime } from './runtime.js';
import type { Tensor } from '../../runtime/tensor/tensor.js';

/** silero-vad (16 kHz op15 file) as the shipped repository configures it, with a chosen maxBatchSize. */
export function vadModelJson(maxBatchSize: number, batching: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    maxBatchSize,
    inputs: [
      { name: 'input', datatype: 'FP32', dims: [-1, 576] },
      { name: 'state', datatype: 'FP32', dims: [2, -1, 128], batchAxis: 1 },
      { name: 'sr', datatype: 'INT64', dims: [], batchAxis: null },
    ],
    outputs: [
      { name: 'output', datatype: 'FP32', dims: [-1, 1] },
      { name: 'stateN', datatype: 'FP32', dims: [2, -1, 128], batchAxis: 1 },
    ],
    batching: { maxQueueDelayMs: 0, ...batching },
    warmup: { inputs: { sr: { data: [16000] } } },
  };
}

/**
 * PP-OCR det input of side `size`. At 960 one run takes about 250 ms on one core of a desktop
 * CPU (hundreds of times a loopback round trip), at 32 about 1 ms.
 */
export function detInput(size: number, seed = 7): Tensor[] {
  return [randomFp32('x', [1, 3, size, size], seed, 0, 1)];
}

export const LONG_DET_SIZE = 960;

/** The scheduler of a served model: `active` batches running, `depth` requests waiting. */
export function batcherOf(rt: TestRuntime, model: string): { active: number; depth: number; bytes: number } {
  return rt.runtime.registry.resolve(model).batcher;
}

/** Resolves to true once `p` settles; lets a test check that something has NOT finished yet. */
export function settledFlag(p: Promise<unknown>): { readonly done: boolean } {
  const flag = { done: false };
  void p.then(() => (flag.done = true), () => (flag.done = true));
  return flag;
}
