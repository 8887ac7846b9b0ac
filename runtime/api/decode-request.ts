// Turns a validated OIP body (+ the bytes that follow a binary header) into tensors.
import { z } from 'zod';
import { PerchError } from '../base/errors.js';
import { formatIssues } from '../base/zod-issues.js';
import { checkBinaryTotal, decodeBinaryAt } from '../tensor/binary-codec.js';
import { BYTES_CONTENT_TYPES, decodeJsonData, type BytesContentType } from '../tensor/json-codec.js';
import type { TensorData } from '../tensor/datatypes.js';
import type { Tensor } from '../tensor/tensor.js';
import type { RequestedOutput } from '../inference/infer-service.js';
import type { InferBody, RequestTensor } from './oip-schema.js';

export function parseJson(text: string | Buffer): unknown {
  try {
    return JSON.parse(typeof text === 'string' ? text : text.toString('utf8'));
  } catch (err) {
    throw new PerchError('PERCH_ERR_MALFORMED_JSON', `not valid JSON: ${(err as Error).message}`);
  }
}

export function validate<T>(schema: z.ZodType<T>, value: unknown, what: string): T {
  const r = schema.safeParse(value);
  if (!r.success) throw new PerchError('PERCH_ERR_INVALID_MESSAGE', `invalid ${what}:\n${formatIssues(r.error)}`);
  return r.data;
}

/**
 * Decodes every input; `binary` is what follows the JSON header (empty for pure JSON).
 * `decoded[i]`, when given, is input i's JSON `data` already decoded (by the JSON parse thread,
 * json-thread/parse-thread.ts), so only its checks and its binary part are left to do here.
 */
export function decodeInputs(inputs: RequestTensor[], binary: Uint8Array, decoded?: readonly (TensorData | undefined)[]): Tensor[] {
  // Plain loops and an array of the right length: this runs for every stream chunk, and the
  // entries() iterator, the sizes and the parts arrays were allocations of each (issue 20).
  let total = 0;
  for (let i = 0; i < inputs.length; i++) {
    const t = inputs[i] as RequestTensor;
    const size = t.parameters?.binary_data_size;
    if (size !== undefined) {
      if (t.data !== undefined) throw new PerchError('PERCH_ERR_INVALID_MESSAGE', `input '${t.name}' has both data and binary_data_size`);
      total += size;
    } else if (t.data === undefined && decoded?.[i] === undefined) {
      throw new PerchError('PERCH_ERR_INVALID_MESSAGE', `input '${t.name}' has neither data nor parameters.binary_data_size`);
    }
  }
  checkBinaryTotal(total, binary);
  const out = new Array<Tensor>(inputs.length);
  let at = 0;
  for (let i = 0; i < inputs.length; i++) {
    const t = inputs[i] as RequestTensor;
    const size = t.parameters?.binary_data_size;
    let data: TensorData;
    if (size !== undefined) {
      data = decodeBinaryAt(t.name, t.datatype, t.shape, binary, at, size);
      at += size;
    } else {
      data = decoded?.[i] ?? decodeJsonData(t.name, t.datatype, t.shape, t.data, bytesContentType(t));
    }
    out[i] = { name: t.name, datatype: t.datatype, shape: t.shape, data };
  }
  return out;
}

/**
 * The JSON `data` of every input that has it, decoded, and taken out of the body (`data` set to
 * undefined), so what is left to send between threads is small. Inputs with binary data (or
 * with none, or with both: decodeInputs refuses those) are left as they are.
 */
export function decodeJsonInputs(inputs: RequestTensor[]): (TensorData | undefined)[] {
  return inputs.map((t) => {
    if (t.parameters?.binary_data_size !== undefined || t.data === undefined) return undefined;
    const data = decodeJsonData(t.name, t.datatype, t.shape, t.data, bytesContentType(t));
    t.data = undefined;
    return data;
  });
}

/** `parameters.content_type` of a JSON BYTES input: 'str' (the default) or 'base64' (docs/api.md). */
function bytesContentType(t: RequestTensor): BytesContentType {
  const ct = t.parameters?.content_type;
  if (ct === undefined) return 'str';
  if (typeof ct === 'string' && (BYTES_CONTENT_TYPES as readonly string[]).includes(ct)) {
    if (ct === 'base64' && t.datatype !== 'BYTES') throw new PerchError('PERCH_ERR_INVALID_PARAMETER', `input '${t.name}': content_type base64 applies to BYTES tensors only`);
    return ct as BytesContentType;
  }
  throw new PerchError('PERCH_ERR_INVALID_PARAMETER', `input '${t.name}': parameters.content_type must be one of ${BYTES_CONTENT_TYPES.join(', ')}`);
}

export function requestedOutputs(body: InferBody): RequestedOutput[] | undefined {
  return body.outputs?.map((o) => ({ name: o.name, binary: o.parameters?.binary_data }));
}
