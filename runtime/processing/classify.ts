// Classifier post-processing: optional softmax, then the k best classes of each row with their
// labels (one label per line of the labels file).
import type { Tensor } from '../tensor/tensor.js';

/** Labels BYTES [n, k] and scores FP32 [n, k] from FP32 [n, C] (or [C]). */
export function topK(t: Tensor, labels: readonly string[], k: number, softmax: boolean, to: string, scoresTo: string): [Tensor, Tensor] {
  const classes = t.shape[t.shape.length - 1] ?? 0;
  const rows = classes ? (t.data as Float32Array).length / classes : 0;
  const kk = Math.min(k, classes);
  const names: Uint8Array[] = [];
  const scores = new Float32Array(rows * kk);
  for (let r = 0; r < rows; r++) {
    let row = Array.from((t.data as Float32Array).subarray(r * classes, (r + 1) * classes));
    if (softmax) {
      const max = Math.max(...row);
      const e = row.map((v) => Math.exp(v - max));
      const s = e.reduce((a, b) => a + b, 0);
      row = e.map((v) => v / s);
    }
    const order = row.map((v, i) => [v, i] as const).sort((a, b) => b[0] - a[0]).slice(0, kk);
    order.forEach(([v, i], j) => {
      scores[r * kk + j] = v;
      names.push(Buffer.from(labels[i] ?? String(i), 'utf8'));
    });
  }
  return [
    { name: to, datatype: 'BYTES', shape: [rows, kk], data: names },
    { name: scoresTo, datatype: 'FP32', shape: [rows, kk], data: scores },
  ];
}
