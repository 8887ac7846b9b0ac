// DB text-region extraction (PaddleOCR's DBPostProcess): the detector's probability map is
// thresholded, split into connected components, each scored by its mean probability and boxed by
// its smallest rotated rectangle, which is then expanded ("unclipped"), because DB predicts a
// shrunk kernel of each text line. A tilted line gets a tilted box (rotated-rect.ts). Boxes come
// back in the image's pixel coordinates.
import type { Tensor } from '../tensor/tensor.js';
import { imageSize } from './image.js';
import { corners, minAreaRect, type Point } from './rotated-rect.js';

export interface RegionOptions {
  threshold: number;
  boxThreshold: number;
  unclipRatio: number;
  minSize: number;
  maxRegions: number;
}

interface Region {
  /** The ends of the component's runs of pixels, row by row (pixel corners): its outline. */
  outline: Point[];
  score: number;
}

/** Connected components (8-neighbour) of map > threshold, each with its outline and mean score. */
function components(map: Float32Array, w: number, h: number, threshold: number): Region[] {
  const label = new Int32Array(w * h);
  const queue = new Int32Array(w * h);
  const out: Region[] = [];
  let next = 0;
  for (let start = 0; start < w * h; start++) {
    if (label[start] !== 0 || (map[start] as number) <= threshold) continue;
    next++;
    let head = 0, tail = 0;
    queue[tail++] = start;
    label[start] = next;
    let sum = 0;
    while (head < tail) {
      const p = queue[head++] as number;
      const px = p % w, py = (p - px) / w;
      sum += map[p] as number;
      for (let dy = -1; dy <= 1; dy++) {
        const ny = py + dy;
        if (ny < 0 || ny >= h) continue;
        for (let dx = -1; dx <= 1; dx++) {
          const nx = px + dx;
          if (nx < 0 || nx >= w) continue;
          const q = ny * w + nx;
          if (label[q] === 0 && (map[q] as number) > threshold) {
            label[q] = next;
            queue[tail++] = q;
          }
        }
      }
    }
    out.push({ outline: [], score: sum / tail });
  }
  // One pass over the labels: each run of one component in a row adds its four pixel corners.
  for (let y = 0; y < h; y++) {
    let x = 0;
    while (x < w) {
      const l = label[y * w + x] as number;
      if (l === 0) { x++; continue; }
      const x0 = x;
      while (x < w && label[y * w + x] === l) x++;
      out[l - 1]!.outline.push([x0, y], [x0, y + 1], [x, y], [x, y + 1]);
    }
  }
  return out;
}

/**
 * Boxes FP32 [n, 4, 2] (corners clockwise from the top left) and scores FP32 [n], in reading
 * order (top to bottom, then left to right).
 */
export function textRegions(mapT: Tensor, image: Tensor, o: RegionOptions, to: string, scoresTo: string): [Tensor, Tensor] {
  const h = mapT.shape[mapT.shape.length - 2] as number;
  const w = mapT.shape[mapT.shape.length - 1] as number;
  const map = mapT.data as Float32Array;
  const img = imageSize(image);
  const sx = img.width / w;
  const sy = img.height / h;
  let regions = components(map, w, h, o.threshold)
    .filter((r) => r.score >= o.boxThreshold)
    .map((r) => ({ rect: minAreaRect(r.outline), score: r.score }))
    .filter((r) => Math.min(r.rect.w, r.rect.h) >= o.minSize);
  if (regions.length > o.maxRegions) regions = regions.sort((a, b) => b.score - a.score).slice(0, o.maxRegions);
  const boxes = regions.map(({ rect, score }) => {
    // Unclip: offset the rectangle by area * ratio / perimeter (PaddleOCR's unclip distance).
    const d = (rect.w * rect.h * o.unclipRatio) / (2 * (rect.w + rect.h));
    const quad = corners({ ...rect, w: rect.w + 2 * d, h: rect.h + 2 * d })
      .map(([x, y]) => [Math.min(img.width, Math.max(0, x * sx)), Math.min(img.height, Math.max(0, y * sy))] as Point);
    return { quad, score };
  });
  boxes.sort((a, b) => (Math.abs(a.quad[0]![1] - b.quad[0]![1]) < 10 ? a.quad[0]![0] - b.quad[0]![0] : a.quad[0]![1] - b.quad[0]![1]));
  const data = new Float32Array(boxes.length * 8);
  const scores = new Float32Array(boxes.length);
  boxes.forEach((b, i) => {
    data.set(b.quad.flat(), i * 8);
    scores[i] = b.score;
  });
  return [
    { name: to, datatype: 'FP32', shape: [boxes.length, 4, 2], data },
    { name: scoresTo, datatype: 'FP32', shape: [boxes.length], data: scores },
  ];
}
