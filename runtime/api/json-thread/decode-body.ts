// What the JSON parse thread does with one OIP JSON body (docs/reliability.md "Large JSON bodies:
// parsed on a thread of their own"): parse, check and decode its tensors, so that only the
// decoded tensors (typed arrays, moved, not copied) and the small rest of the body come back.
import { decodeJsonInputs, parseJson } from '../decode-request.js';
import { validateInferBody } from '../infer-shape.js';
import type { InferBody } from '../oip-schema.js';
import type { TensorData } from '../../tensor/datatypes.js';

/** A checked body whose inputs' JSON `data` is in `decoded` (decode-request.ts decodeInputs takes both). */
export interface DecodedBody {
  body: InferBody;
  decoded: (TensorData | undefined)[];
}

export function decodeInferJson(json: Uint8Array): DecodedBody {
  const body = validateInferBody(parseJson(Buffer.from(json.buffer, json.byteOffset, json.byteLength)));
  return { body, decoded: decodeJsonInputs(body.inputs) };
}

/** The ArrayBuffers the decoded tensors own whole: moved to the other thread instead of copied. */
export function ownedBuffers(decoded: readonly (TensorData | undefined)[]): ArrayBuffer[] {
  const out = new Set<ArrayBuffer>();
  for (const d of decoded) {
    if (d === undefined || Array.isArray(d)) continue; // BYTES elements share Buffer's pool: copied
    const t = d as ArrayBufferView;
    if (t.buffer instanceof ArrayBuffer && t.byteOffset === 0 && t.byteLength === t.buffer.byteLength) out.add(t.buffer);
  }
  return [...out];
}
