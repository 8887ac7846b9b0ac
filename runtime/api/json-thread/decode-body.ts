// What the JSON parse thread does with one OIP JSON body (docs/reliability.md "Large JSON bodies:
// parsed off the main thread"): parse, check and decode its tensors, so that only the
// decoded tensors (typed arrays, moved, not copied) and the small rest of the body come back.
import { decodeJsonInputs, parseJson } from '../decode-request.js';
import { validateInferBody } from '../infer-shape.js';
import type { InferBody } from '../oip-schema.js';
import type { TensorData } from '../../tensor/datatypes.js';
import { MIN_RUN_BYTES, NumberRun } from '../../tensor/json-number-run.js';
import { parseWithNumberRuns } from './parse-runs.js';

/** A checked body whose inputs' JSON `data` is in `decoded` (decode-request.ts decodeInputs takes both). */
export interface DecodedBody {
  body: InferBody;
  decoded: (TensorData | undefined)[];
}

export function decodeInferJson(json: Uint8Array): DecodedBody {
  const body = validateInferBody(parseJson(Buffer.from(json.buffer, json.byteOffset, json.byteLength)));
  return { body, decoded: decodeJsonInputs(body.inputs) };
}

/**
 * decodeInferJson for a large body, on the parse thread: its large arrays of numbers are read from
 * the bytes straight into the tensors (parse-runs.ts), never into a string and an array of
 * numbers. The result is decodeInferJson's (test/api/json-thread.test.ts compares them).
 */
export function decodeLargeInferJson(json: Uint8Array, minRunBytes = MIN_RUN_BYTES): DecodedBody {
  const body = validateInferBody(parseWithNumberRuns(json, minRunBytes));
  const decoded = decodeJsonInputs(body.inputs);
  // An input with binary data left its data undecoded: the main thread refuses it, as JSON.
  for (const t of body.inputs) if (t.data instanceof NumberRun) t.data = t.data.toJson();
  return { body, decoded };
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
