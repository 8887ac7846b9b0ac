// OIP responses as JSON, or as a JSON header followed by binary tensors (Triton's extension).
import { encodeBinaryData } from '../tensor/binary-codec.js';
import { encodeJsonData, jsonBytesForm } from '../tensor/json-codec.js';
import type { InferResult } from '../inference/infer-service.js';

export interface EncodedResult {
  /** The OIP response object (binary outputs carry binary_data_size instead of data). */
  header: Record<string, unknown>;
  /** Bytes of the binary outputs, in output order; empty when everything is JSON. */
  chunks: Uint8Array[];
}

/** `binaryByDefault` is the transport's choice for outputs the request did not decide. */
export function encodeResult(r: InferResult, binaryByDefault: boolean): EncodedResult {
  const chunks: Uint8Array[] = [];
  const outputs = r.outputs.map((t, i) => {
    const asBinary = r.binary[i] ?? binaryByDefault;
    if (!asBinary) {
      // BYTES that are not all text go out in base64, and say so (docs/api.md, BYTES).
      if (Array.isArray(t.data) && jsonBytesForm(t.data) === 'base64') {
        return { name: t.name, datatype: t.datatype, shape: t.shape, parameters: { content_type: 'base64' }, data: encodeJsonData(t, 'base64') };
      }
      return { name: t.name, datatype: t.datatype, shape: t.shape, data: encodeJsonData(t) };
    }
    const bytes = encodeBinaryData(t);
    chunks.push(bytes);
    return { name: t.name, datatype: t.datatype, shape: t.shape, parameters: { binary_data_size: bytes.byteLength } };
  });
  const header: Record<string, unknown> = {
    model_name: r.model_name,
    model_version: r.model_version,
    ...(r.id !== undefined ? { id: r.id } : {}),
    parameters: r.parameters,
    outputs,
  };
  return { header, chunks };
}
