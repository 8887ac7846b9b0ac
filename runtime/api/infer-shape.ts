// A hand-written check of the common inference request, run before the zod schemas of
// oip-schema.ts and ws/messages.ts. zod took a few µs per request, a real share of the main
// thread at thousands of requests a second. The schemas stay the one definition: this accepts
// only what they accept (test/api/infer-shape.test.ts holds it to that), and everything it does
// not accept goes on to them, which decide and word the error.
import { DATATYPES } from '../tensor/datatypes.js';
import { validate } from './decode-request.js';
import { inferBodySchema, type InferBody } from './oip-schema.js';
import { inferMessageSchema, type InferMessage } from './ws/messages.js';

const DATATYPE_SET: ReadonlySet<unknown> = new Set(DATATYPES);

type Plain = Record<string, unknown>;

function isPlain(v: unknown): v is Plain {
  return typeof v === 'object' && v !== null && Object.getPrototypeOf(v) === Object.prototype;
}

const isName = (v: unknown): boolean => typeof v === 'string' && v.length > 0;
const isCount = (v: unknown): boolean => Number.isSafeInteger(v) && (v as number) >= 0;

function isInput(t: unknown): boolean {
  if (!isPlain(t) || !isName(t.name) || !DATATYPE_SET.has(t.datatype) || !Array.isArray(t.shape)) return false;
  for (const d of t.shape) if (!isCount(d)) return false;
  const p = t.parameters;
  return p === undefined || (isPlain(p) && (p.binary_data_size === undefined || isCount(p.binary_data_size)));
}

function isOutput(o: unknown): boolean {
  if (!isPlain(o) || !isName(o.name)) return false;
  const p = o.parameters;
  return p === undefined || (isPlain(p) && (p.binary_data === undefined || typeof p.binary_data === 'boolean'));
}

/** The OIP body fields (docs/protocol.md section 2), in the common form. */
function isCommonBody(v: Plain): boolean {
  const { inputs, outputs, parameters } = v;
  if (!Array.isArray(inputs) || inputs.length === 0) return false;
  for (const t of inputs) if (!isInput(t)) return false;
  if (outputs !== undefined) {
    if (!Array.isArray(outputs)) return false;
    for (const o of outputs) if (!isOutput(o)) return false;
  }
  return parameters === undefined || isPlain(parameters);
}

export function isCommonInferBody(v: unknown): v is InferBody {
  return isPlain(v) && (v.id === undefined || typeof v.id === 'string') && isCommonBody(v);
}

export function isCommonInferMessage(v: unknown): v is InferMessage {
  if (!isPlain(v) || (typeof v.id !== 'string' && typeof v.id !== 'number') || v.op !== 'infer' || !isName(v.model)) return false;
  const version = v.version;
  if (version !== undefined && typeof version !== 'string' && !Number.isSafeInteger(version)) return false;
  return isCommonBody(v);
}

/** An HTTP inference body: the fast check, else the schema (which throws the readable error). */
export function validateInferBody(v: unknown): InferBody {
  return isCommonInferBody(v) ? v : validate(inferBodySchema, v, 'inference request');
}

/** A WebSocket infer message: the fast check, else the schema. */
export function validateInferMessage(v: unknown): InferMessage {
  return isCommonInferMessage(v) ? v : validate(inferMessageSchema, v, 'infer message');
}
