// Deterministic inputs for the real models (shapes and feeding from test/fixtures/README.md)
// and the raw onnxruntime answer to compare Perch with.
import ort from 'onnxruntime-node';
import type { Tensor } from '../../runtime/tensor/tensor.js';
import { elementCount } from '../../runtime/tensor/tensor.js';
import { fromOrtResults, toOrtFeeds } from '../../runtime/sessions/ort-session.js';
import { MODEL_FILES } from './paths.js';

/** A small seeded PRNG so every run feeds the same "random" data. */
export function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function randomFp32(name: string, shape: number[], seed: number, lo = -1, hi = 1): Tensor {
  const r = rng(seed);
  const data = new Float32Array(elementCount(shape));
  for (let i = 0; i < data.length; i++) data[i] = lo + (hi - lo) * r();
  return { name, datatype: 'FP32', shape, data };
}

export function vadInputs(seed: number, batch = 1, sampleRate = 16000, samples = 576): Tensor[] {
  return [
    randomFp32('input', [batch, samples], seed, -0.5, 0.5),
    randomFp32('state', [2, batch, 128], seed + 1, -0.1, 0.1),
    { name: 'sr', datatype: 'INT64', shape: [], data: BigInt64Array.from([BigInt(sampleRate)]) },
  ];
}

export function clsInput(seed: number, batch = 1): Tensor[] {
  return [randomFp32('x', [batch, 3, 48, 192], seed)];
}

/** For each real test model (test/helpers/paths.ts): a name, its file, and one valid input set. */
export const REAL_MODEL_CASES: Array<{ name: string; file: string; inputs: (seed: number) => Tensor[] }> = [
  { name: 'silero-vad', file: MODEL_FILES.sileroVad, inputs: (s) => vadInputs(s) },
  { name: 'silero-vad-16k', file: MODEL_FILES.sileroVad16k, inputs: (s) => vadInputs(s) },
  { name: 'ocr-det', file: MODEL_FILES.ocrDet, inputs: (s) => [randomFp32('x', [1, 3, 64, 96], s)] },
  { name: 'ocr-rec', file: MODEL_FILES.ocrRec, inputs: (s) => [randomFp32('x', [1, 3, 48, 160], s)] },
  { name: 'ocr-cls', file: MODEL_FILES.ocrCls, inputs: (s) => clsInput(s) },
  { name: 'blazeface', file: MODEL_FILES.blazeface, inputs: (s) => [randomFp32('input:0', [1, 128, 128, 3], s)] },
];

const sessions = new Map<string, Promise<ort.InferenceSession>>();

/** A direct session.run on the same file: the reference every answer must equal. */
export async function rawRun(file: string, inputs: Tensor[]): Promise<Tensor[]> {
  let s = sessions.get(file);
  if (!s) {
    s = ort.InferenceSession.create(file, { intraOpNumThreads: 1, interOpNumThreads: 1, graphOptimizationLevel: 'all', logSeverityLevel: 3 });
    sessions.set(file, s);
  }
  const copies = inputs.map((t) => ({ ...t, data: Array.isArray(t.data) ? t.data.slice() : t.data.slice() }));
  return fromOrtResults(await (await s).run(toOrtFeeds(copies)));
}

export async function releaseRawSessions(): Promise<void> {
  for (const s of sessions.values()) await (await s).release();
  sessions.clear();
}
