// One way to read an incoming JSON payload: size check, JSON, schema. Bad payloads are never
// thrown at the MQTT client's message handler (that would kill the connection's processing);
// the caller gets a PERCH_ERR_MQTT_PAYLOAD_INVALID it can log and count.
import type { z } from 'zod';
import { duplicateKeyPath } from '../../runtime/base/duplicate-keys.js';
import { PerchError } from '../../runtime/base/errors.js';
import { MAX_JSON_DEPTH, nestedDeeperThan } from '../../runtime/base/json-depth.js';

/** Above this a JSON control message is refused unread (events batches are the largest). */
export const DEFAULT_MAX_PAYLOAD_BYTES = 1024 * 1024;

export type ParseResult<T> =
  | { ok: true; value: T }
  | { ok: false; error: PerchError; reason: 'oversized' | 'json' | 'depth' }
  /** `json` and `issues` let a caller say what was wrong in its own bounded words (agent/refused-desired.ts). */
  | { ok: false; error: PerchError; reason: 'schema'; json: unknown; issues: z.ZodIssue[] };

/**
 * `refuseDuplicateKeys`: a key given twice in one object breaks the schema (JSON.parse keeps the
 * last silently; runtime/base/duplicate-keys.ts). For desired documents, whose `config` and
 * model.json the device takes whole: a second scan of the text, not paid by every event batch.
 */
export function parsePayload<S extends z.ZodType>(
  schema: S,
  payload: Uint8Array | string,
  maxBytes: number = DEFAULT_MAX_PAYLOAD_BYTES,
  refuseDuplicateKeys = false,
): ParseResult<z.output<S>> {
  const size = typeof payload === 'string' ? Buffer.byteLength(payload) : payload.byteLength;
  if (size > maxBytes) {
    return { ok: false, reason: 'oversized', error: new PerchError('PERCH_ERR_MQTT_PAYLOAD_INVALID', `payload of ${size} bytes is over the ${maxBytes}-byte limit`) };
  }
  let json: unknown;
  const text = typeof payload === 'string' ? payload : Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength).toString('utf8');
  try {
    json = JSON.parse(text);
  } catch (err) {
    return { ok: false, reason: 'json', error: new PerchError('PERCH_ERR_MQTT_PAYLOAD_INVALID', `payload is not JSON: ${(err as Error).message}`, { cause: err }) };
  }
  // Before anything recursive reads it (the schema's copy, JSON.stringify into a store or a log):
  // a deep value overflows the stack there (runtime/base/json-depth.ts).
  if (nestedDeeperThan(json, MAX_JSON_DEPTH)) {
    return { ok: false, reason: 'depth', error: new PerchError('PERCH_ERR_MQTT_PAYLOAD_INVALID', `payload nests objects or arrays more than ${MAX_JSON_DEPTH} levels deep`) };
  }
  const twice = refuseDuplicateKeys ? duplicateKeyPath(text) : null;
  if (twice !== null) {
    const message = 'key given twice (JSON keeps only the last)';
    const issues: z.ZodIssue[] = [{ code: 'custom', path: twice, message, input: json }];
    return { ok: false, reason: 'schema', json, issues, error: new PerchError('PERCH_ERR_MQTT_PAYLOAD_INVALID', `payload breaks its schema: ${twice.join('.')}: ${message}`) };
  }
  const result = schema.safeParse(json);
  if (!result.success) {
    const issues = result.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ');
    return { ok: false, reason: 'schema', json, issues: result.error.issues, error: new PerchError('PERCH_ERR_MQTT_PAYLOAD_INVALID', `payload breaks its schema: ${issues}`) };
  }
  return { ok: true, value: result.data };
}
