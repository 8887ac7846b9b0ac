// Giving back what onnxruntime's CPU arena keeps (docs/reliability.md "Memory after a burst").
// The arena grows to the largest batch a session ran and keeps it for the session's life: after
// the infer flood, pp-ocr-cls's session held about 50 MB more than at idle (batches of 32 images),
// the largest part of what stayed 30 s after the clients left. onnxruntime-node offers no way to
// shrink it (RunOptions take no config entries), and running without the arena cost pp-ocr-cls
// about a quarter more CPU per single-image run (a malloc and page faults per intermediate
// tensor). So a session thread that ran a large batch opens its session again when the device
// goes idle after a burst (the idle collector's COLLECT, runtime/base/full-collection.ts), runs
// it once on zeros so the next request does not pay onnxruntime's first-run set-up, and
// releases the old session once nothing runs on it.
import type ort from 'onnxruntime-node';
import { allocate, datatypeFromOrt } from '../tensor/datatypes.js';
import { elementCount, type Tensor } from '../tensor/tensor.js';
import type { OrtTensorMetadata } from './executor.js';
import { toOrtFeeds } from './ort-session.js';

/**
 * A run with at least this many bytes of input since the session opened makes the next idle
 * moment renew it: 10 classifier images (1.1 MB), one 640x640 detector image (4.9 MB). Streams'
 * small chunks (VAD: a few KB) never do.
 */
export const RENEW_AFTER_INPUT_BYTES = 1024 * 1024;

/**
 * Zeros for every input at batch 1 (a dynamic first axis taken as 1), or null when an input has
 * another dynamic axis or a type without a zero here (strings): such a session is renewed
 * without the warm run.
 */
export function zeroFeeds(inputs: readonly OrtTensorMetadata[]): Record<string, ort.Tensor> | null {
  const feeds: Tensor[] = [];
  for (const m of inputs) {
    const datatype = m.type ? datatypeFromOrt(m.type) : undefined;
    if (!m.isTensor || !datatype || datatype === 'BYTES' || !m.shape) return null;
    const dims: number[] = [];
    for (let i = 0; i < m.shape.length; i++) {
      const d = m.shape[i];
      if (typeof d === 'number' && d > 0) dims.push(d);
      else if (i === 0) dims.push(1);
      else return null;
    }
    feeds.push({ name: m.name, datatype, shape: dims, data: allocate(datatype, elementCount(dims)) });
  }
  return toOrtFeeds(feeds);
}
