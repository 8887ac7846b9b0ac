// Runs one processing step (no model call) on its input tensors: what a processing thread does
// for each task. The inputs are given in the order stepInputs() lists and the outputs come back
// in the order of stepOutputs() (step-io.ts).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PerchError } from '../base/errors.js';
import { folderFile } from '../models/folder-file.js';
import type { Tensor } from '../tensor/tensor.js';
import { decodeWav } from './audio.js';
import { decodeFaces } from './blazeface.js';
import { topK } from './classify.js';
import { ctcGreedy } from './ctc.js';
import { cropTensor, decodeImage, imageTensor, probeImage } from './image.js';
import { textRegions } from './text-regions.js';
import type { ProcessingStep } from './step-io.js';

const lines = new Map<string, string[]>();

/** A keys or labels file of the model folder, read once per thread. */
function readLines(dir: string, file: string): string[] {
  const path = join(dir, file);
  let l = lines.get(path);
  if (!l) {
    l = readFileSync(folderFile(dir, file), 'utf8').split(/\r?\n/);
    if (l.at(-1) === '') l.pop();
    lines.set(path, l);
  }
  return l;
}

/** Rows whose class `cls` has probability >= threshold. */
function rowsAbove(t: Tensor, cls: number, threshold: number): boolean[] {
  const classes = t.shape[t.shape.length - 1] ?? 1;
  const d = t.data as Float32Array;
  const out: boolean[] = [];
  for (let r = 0; r * classes < d.length; r++) out.push((d[r * classes + cls] ?? 0) >= threshold);
  return out;
}

/** An image.decode step's header only: FP64 [2], width and height (ProcessingPool.probe). */
export async function probeStep(s: ProcessingStep, inputs: Tensor[]): Promise<Tensor[]> {
  if (s.op !== 'image.decode' || !inputs[0]) throw new PerchError('PERCH_ERR_INTERNAL', `step '${s.name}': only an image.decode step is probed`);
  const { width, height } = await probeImage(inputs[0], s.maxPixels);
  return [{ name: 'size', datatype: 'FP64', shape: [2], data: new Float64Array([width, height]) }];
}

/** `dir`: the model's folder (keys and labels files are read from it). */
export async function runStep(s: ProcessingStep, inputs: Tensor[], dir: string): Promise<Tensor[]> {
  const at = (i: number): Tensor => {
    const t = inputs[i];
    if (!t) throw new PerchError('PERCH_ERR_INTERNAL', `step '${s.name}': input ${i} missing`);
    return t;
  };
  switch (s.op) {
    case 'image.decode': return [await decodeImage(at(0), s.maxPixels, s.to)];
    case 'image.tensor': return [await imageTensor(at(0), s, s.to)];
    case 'image.crops': {
      const rotate = s.rotate180 ? rowsAbove(at(2), s.rotate180.class, s.rotate180.threshold) : [];
      return [cropTensor(at(0), at(1), s.height, s.width, s, rotate, s.to)];
    }
    case 'text.regions': return textRegions(at(0), at(1), s, s.to, s.scores);
    case 'ctc.greedy': return ctcGreedy(at(0), readLines(dir, s.keys), s.spaceAfterKeys, s.to, s.confidence);
    case 'classify.topk': return topK(at(0), readLines(dir, s.labels), s.k, s.softmax, s.to, s.scores);
    case 'blazeface.decode': return decodeFaces([at(0), at(1)], [at(2), at(3)], at(4), s, [s.to, s.keypoints, s.confidences]);
    case 'audio.decode': return [decodeWav(at(0), s.sampleRate, s.maxSeconds, s.to)];
  }
}
