// Greedy CTC decoding (PaddleOCR's CTCLabelDecode): the best class at each time step, repeats
// collapsed, blanks (class 0) dropped; class i is line i-1 of the keys file, and with
// spaceAfterKeys the class after the last key is a space.
import type { Tensor } from '../tensor/tensor.js';

/** Texts BYTES [n] and confidences FP32 [n] (mean best probability of the kept steps) from FP32 [n, T, C]. */
export function ctcGreedy(probs: Tensor, keys: readonly string[], spaceAfterKeys: boolean, to: string, confidenceTo: string): [Tensor, Tensor] {
  const [n = 0, steps = 0, classes = 0] = probs.shape;
  const p = probs.data as Float32Array;
  const texts: Uint8Array[] = [];
  const conf = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    let text = '';
    let sum = 0, kept = 0, prev = -1;
    for (let t = 0; t < steps; t++) {
      const row = (i * steps + t) * classes;
      let best = 0, bestP = -Infinity;
      for (let c = 0; c < classes; c++) {
        const v = p[row + c] as number;
        if (v > bestP) [best, bestP] = [c, v];
      }
      if (best !== 0 && best !== prev) {
        const key = best - 1 < keys.length ? keys[best - 1] : spaceAfterKeys && best - 1 === keys.length ? ' ' : '';
        text += key ?? '';
        sum += bestP;
        kept++;
      }
      prev = best;
    }
    texts.push(Buffer.from(text, 'utf8'));
    conf[i] = kept ? sum / kept : 0;
  }
  return [
    { name: to, datatype: 'BYTES', shape: [n], data: texts },
    { name: confidenceTo, datatype: 'FP32', shape: [n], data: conf },
  ];
}
