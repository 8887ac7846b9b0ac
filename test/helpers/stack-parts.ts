// FP32 parts of one shape but for `axis`, where part i has sizes[i] items, numbered 0, 1, 2, ...
// across all parts (so a misplaced element shows): the inputs of the stacking tests
// (test/tensor/tensor.test.ts, test/tensor/buffer-pool.test.ts).
import { elementCount, type Tensor } from '../../runtime/tensor/tensor.js';

export function numberedParts(shape: readonly number[], axis: number, sizes: readonly number[]): Tensor[] {
  let v = 0;
  return sizes.map((n) => {
    const s = shape.slice();
    s[axis] = n;
    return { name: 't', datatype: 'FP32', shape: s, data: Float32Array.from({ length: elementCount(s) }, () => v++) };
  });
}
