// BlazeFace (MediaPipe short-range, 128 x 128) output decoding: anchors on a 16 x 16 grid (2 per
// cell, stride 8) and an 8 x 8 grid (6 per cell, stride 16); score = sigmoid(logit); box centre
// = anchor + (r0, r1) / 128, size (r2, r3) / 128; six keypoints anchor + (r[4+2k], r[5+2k]) / 128
// (keijiro's BlazeFace decoder); then non-maximum suppression. Coordinates in image pixels: back
// through the resize the input step made (stretched to 128 x 128, or letterboxed at the top left
// as MediaPipe keeps the aspect ratio, so a face in a 16:9 frame is not squashed; docs/pipelines.md).
import type { Tensor } from '../tensor/tensor.js';
import { imageSize, targetSize } from './image.js';

const GRIDS: Array<{ cells: number; perCell: number }> = [{ cells: 16, perCell: 2 }, { cells: 8, perCell: 6 }];

interface Face { box: [number, number, number, number]; keypoints: number[]; score: number }

function iou(a: Face['box'], b: Face['box']): number {
  const w = Math.max(0, Math.min(a[2], b[2]) - Math.max(a[0], b[0]));
  const h = Math.max(0, Math.min(a[3], b[3]) - Math.max(a[1], b[1]));
  const inter = w * h;
  const union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter;
  return union > 0 ? inter / union : 0;
}

/** Greedy NMS: best score first, dropping boxes that overlap a kept one by more than `iouThreshold`. */
export function nms<T extends { box: Face['box']; score: number }>(items: T[], iouThreshold: number, max: number): T[] {
  const kept: T[] = [];
  for (const f of items.sort((a, b) => b.score - a.score)) {
    if (kept.length >= max) break;
    if (kept.every((k) => iou(k.box, f.box) <= iouThreshold)) kept.push(f);
  }
  return kept;
}

export interface FaceOptions { inputSize: number; resize: 'stretch' | 'letterbox'; scoreThreshold: number; iouThreshold: number; maxFaces: number }

/** Boxes FP32 [n, 4] (x0, y0, x1, y1), keypoints FP32 [n, 6, 2], scores FP32 [n]. */
export function decodeFaces(scores: [Tensor, Tensor], regressors: [Tensor, Tensor], image: Tensor, o: FaceOptions, names: [string, string, string]): Tensor[] {
  const src = imageSize(image);
  // Model coordinates (0-1 over the input) to image pixels: the input's inner picture covers the
  // whole image (the rest is padding when letterboxed).
  const { inner } = targetSize(src, o.resize, o.inputSize, o.inputSize, o.inputSize);
  const width = (o.inputSize * src.width) / inner.width;
  const height = (o.inputSize * src.height) / inner.height;
  const faces: Face[] = [];
  GRIDS.forEach((g, gi) => {
    const s = scores[gi]!.data as Float32Array;
    const r = regressors[gi]!.data as Float32Array;
    let a = 0;
    for (let cy = 0; cy < g.cells; cy++) {
      for (let cx = 0; cx < g.cells; cx++) {
        for (let k = 0; k < g.perCell; k++, a++) {
          const score = 1 / (1 + Math.exp(-(s[a] as number)));
          if (score < o.scoreThreshold) continue;
          const ax = (cx + 0.5) / g.cells, ay = (cy + 0.5) / g.cells;
          const reg = (i: number): number => (r[a * 16 + i] as number) / o.inputSize;
          const x = ax + reg(0), y = ay + reg(1), w = reg(2), h = reg(3);
          const keypoints: number[] = [];
          for (let p = 0; p < 6; p++) keypoints.push((ax + reg(4 + 2 * p)) * width, (ay + reg(5 + 2 * p)) * height);
          faces.push({ box: [(x - w / 2) * width, (y - h / 2) * height, (x + w / 2) * width, (y + h / 2) * height], keypoints, score });
        }
      }
    }
  });
  const kept = nms(faces, o.iouThreshold, o.maxFaces);
  return [
    { name: names[0], datatype: 'FP32', shape: [kept.length, 4], data: Float32Array.from(kept.flatMap((f) => f.box)) },
    { name: names[1], datatype: 'FP32', shape: [kept.length, 6, 2], data: Float32Array.from(kept.flatMap((f) => f.keypoints)) },
    { name: names[2], datatype: 'FP32', shape: [kept.length], data: Float32Array.from(kept.map((f) => f.score)) },
  ];
}
