// DB text-region extraction (PaddleOCR's DBPostProcess, simplified to upright rectangles): the
// detector's probability map is thresholded, split into connected components, each scored by
// its mean probability, and its box expanded ("unclipped"), because DB predicts a shrunk kernel
// of each text line. Boxes come back in the image's pixel coordinates.
import type { Tensor } from '../tensor/tensor.js';
import { imageSize } from './image.js';

export interface RegionOptions {
  threshold: number;
  boxThreshold: number;
  unclipRatio: number;
  minSize: number;
  maxRegions: number;
}

interface Region {
  x0: number; y0: number; x1: number; y1: number;
  score: number;
}

/** Connected components (8-neighbour) of map > threshold, each with its box and mean score. */
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
    let x0 = w, y0 = h, x1 = -1, y1 = -1, sum = 0;
    while (head < tail) {
      const p = queue[head++] as number;
      const px = p % w, py = (p - px) / w;
      sum += map[p] as number;
      if (px < x0) x0 = px;
      if (px > x1) x1 = px;
      if (py < y0) y0 = py;
      if (py > y1) y1 = py;
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
    out.push({ x0, y0, x1: x1 + 1, y1: y1 + 1, score: sum / tail });
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
  let regions = components(map, w, h, o.threshold).filter((r) => r.score >= o.boxThreshold && Math.min(r.x1 - r.x0, r.y1 - r.y0) >= o.minSize);
  if (regions.length > o.maxRegions) regions = regions.sort((a, b) => b.score - a.score).slice(0, o.maxRegions);
  regions.sort((a, b) => (Math.abs(a.y0 - b.y0) < 10 ? a.x0 - b.x0 : a.y0 - b.y0));
  const boxes = new Float32Array(regions.length * 8);
  const scores = new Float32Array(regions.length);
  regions.forEach((r, i) => {
    // Unclip: offset the rectangle by area * ratio / perimeter (PaddleOCR's unclip distance).
    const bw = r.x1 - r.x0, bh = r.y1 - r.y0;
    const d = (bw * bh * o.unclipRatio) / (2 * (bw + bh));
    const x0 = Math.max(0, (r.x0 - d) * sx), x1 = Math.min(img.width, (r.x1 + d) * sx);
    const y0 = Math.max(0, (r.y0 - d) * sy), y1 = Math.min(img.height, (r.y1 + d) * sy);
    boxes.set([x0, y0, x1, y0, x1, y1, x0, y1], i * 8);
    scores[i] = r.score;
  });
  return [
    { name: to, datatype: 'FP32', shape: [regions.length, 4, 2], data: boxes },
    { name: scoresTo, datatype: 'FP32', shape: [regions.length], data: scores },
  ];
}
