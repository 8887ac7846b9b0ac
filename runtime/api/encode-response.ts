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

/** The last header text made for a model (encodeResultJson), and what it was made from. */
interface HeaderText {
  version: string;
  cached: unknown;
  outputs: Array<{ name: string; datatype: string; shape: number[]; size: number }>;
  json: string;
}

/**
 * Per model name: model names come from the repository, not from clients, so this holds at
 * most one entry per model the runtime has served.
 */
const lastHeader = new Map<string, HeaderText>();

/**
 * encodeResult's header as JSON text. When every output goes out as binary (a WebSocket binary
 * request), that text depends only on the model version, `cached`, and each output's name,
 * datatype, shape and byte size, which are the same for every chunk of a stream: the last text
 * made for the model is reused while they match, so an answer costs no header objects and no
 * JSON.stringify (docs/benchmarks.md, issue 20). Anything else is stringified as before.
 */
export function encodeResultJson(r: InferResult, binaryByDefault: boolean): { json: string; chunks: Uint8Array[] } {
  if (r.id !== undefined || !onlyCached(r.parameters)) return stringified(r, binaryByDefault);
  for (let i = 0; i < r.outputs.length; i++) {
    if (!(r.binary[i] ?? binaryByDefault)) return stringified(r, binaryByDefault);
  }
  const last = lastHeader.get(r.model_name);
  if (last) {
    const chunks: Uint8Array[] = [];
    for (const t of r.outputs) chunks.push(encodeBinaryData(t));
    if (sameHeader(last, r, chunks)) return { json: last.json, chunks };
  }
  // The text is made by encodeResult, as for any other answer; only what it depends on is kept.
  const { json, chunks } = stringified(r, binaryByDefault);
  const outputs = r.outputs.map((t, i) => ({ name: t.name, datatype: t.datatype, shape: t.shape.slice(), size: (chunks[i] as Uint8Array).byteLength }));
  lastHeader.set(r.model_name, { version: r.model_version, cached: r.parameters.cached, outputs, json });
  return { json, chunks };
}

function stringified(r: InferResult, binaryByDefault: boolean): { json: string; chunks: Uint8Array[] } {
  const { header, chunks } = encodeResult(r, binaryByDefault);
  return { json: JSON.stringify(header), chunks };
}

/** Parameters that hold `cached` and nothing else (what the request path answers). */
function onlyCached(p: Record<string, unknown>): boolean {
  let n = 0;
  for (const k in p) if (Object.prototype.hasOwnProperty.call(p, k)) n++;
  return n === 1 && typeof p.cached === 'boolean';
}

function sameHeader(h: HeaderText, r: InferResult, chunks: readonly Uint8Array[]): boolean {
  if (h.version !== r.model_version || h.cached !== r.parameters.cached || h.outputs.length !== r.outputs.length) return false;
  for (let i = 0; i < h.outputs.length; i++) {
    const o = h.outputs[i] as HeaderText['outputs'][number];
    const t = r.outputs[i] as InferResult['outputs'][number];
    if (o.name !== t.name || o.datatype !== t.datatype || o.size !== (chunks[i] as Uint8Array).byteLength || o.shape.length !== t.shape.length) return false;
    for (let d = 0; d < o.shape.length; d++) if (o.shape[d] !== t.shape[d]) return false;
  }
  return true;
}
