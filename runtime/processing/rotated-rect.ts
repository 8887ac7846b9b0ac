// Rotated rectangles for text regions (PaddleOCR's DBPostProcess takes cv2.minAreaRect of each
// component, unclips it and takes the rectangle again, so a tilted or vertical line of text gets
// a tilted box, and its crop is cut along the box: docs/models.md, "Pipelines").

export type Point = [number, number];

/** Convex hull (Andrew's monotone chain), counter-clockwise in image coordinates (y down). */
export function convexHull(points: Point[]): Point[] {
  const p = points.slice().sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  if (p.length < 3) return p;
  const cross = (o: Point, a: Point, b: Point): number => (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0]);
  const lower: Point[] = [];
  for (const q of p) {
    while (lower.length >= 2 && cross(lower[lower.length - 2]!, lower[lower.length - 1]!, q) <= 0) lower.pop();
    lower.push(q);
  }
  const upper: Point[] = [];
  for (let i = p.length - 1; i >= 0; i--) {
    const q = p[i]!;
    while (upper.length >= 2 && cross(upper[upper.length - 2]!, upper[upper.length - 1]!, q) <= 0) upper.pop();
    upper.push(q);
  }
  return lower.slice(0, -1).concat(upper.slice(0, -1));
}

export interface RotatedRect {
  cx: number; cy: number;
  /** Side lengths along `angle` and across it. */
  w: number; h: number;
  /** Direction of the `w` side, radians. */
  angle: number;
}

/** The smallest-area rectangle around the points: one of its sides lies on a hull edge. */
export function minAreaRect(points: Point[]): RotatedRect {
  const hull = convexHull(points);
  let best: RotatedRect = { cx: hull[0]?.[0] ?? 0, cy: hull[0]?.[1] ?? 0, w: 0, h: 0, angle: 0 };
  let bestArea = Infinity;
  const edges = hull.length < 2 ? 1 : hull.length;
  for (let i = 0; i < edges; i++) {
    const a = hull[i] ?? [0, 0];
    const b = hull[(i + 1) % hull.length] ?? [1, 0];
    const len = Math.hypot(b[0] - a[0], b[1] - a[1]);
    const ux = len > 0 ? (b[0] - a[0]) / len : 1, uy = len > 0 ? (b[1] - a[1]) / len : 0;
    let minU = Infinity, maxU = -Infinity, minV = Infinity, maxV = -Infinity;
    for (const q of hull) {
      const u = q[0] * ux + q[1] * uy;
      const v = -q[0] * uy + q[1] * ux;
      if (u < minU) minU = u;
      if (u > maxU) maxU = u;
      if (v < minV) minV = v;
      if (v > maxV) maxV = v;
    }
    const area = (maxU - minU) * (maxV - minV);
    if (area < bestArea) {
      bestArea = area;
      const cu = (minU + maxU) / 2, cv = (minV + maxV) / 2;
      best = { cx: cu * ux - cv * uy, cy: cu * uy + cv * ux, w: maxU - minU, h: maxV - minV, angle: Math.atan2(uy, ux) };
    }
  }
  return best;
}

/**
 * The rectangle's corners clockwise from the top left, as PaddleOCR orders them (of the two
 * leftmost corners the upper one first, then the upper of the two rightmost).
 */
export function corners(r: RotatedRect): [Point, Point, Point, Point] {
  const ux = Math.cos(r.angle), uy = Math.sin(r.angle);
  const hw = r.w / 2, hh = r.h / 2;
  const pts: Point[] = [[-hw, -hh], [hw, -hh], [hw, hh], [-hw, hh]].map(([u, v]) => [r.cx + u! * ux - v! * uy, r.cy + u! * uy + v! * ux]);
  pts.sort((a, b) => a[0] - b[0]);
  const [l1, l2, r1, r2] = pts as [Point, Point, Point, Point];
  const [tl, bl] = l1[1] <= l2[1] ? [l1, l2] : [l2, l1];
  const [tr, br] = r1[1] <= r2[1] ? [r1, r2] : [r2, r1];
  return [tl, tr, br, bl];
}
