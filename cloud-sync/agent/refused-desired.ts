// A desired document refused before it is read as one (oversized, not JSON, breaks the schema) is
// said in state/reported `ignored` like a stale one (docs/cloud-sync.md "Desired and reported
// state"), so `perch fleet push --wait` and rollouts see the refusal instead of waiting out their
// timeout. What is said is the device's own words: the version when one can be read, a stable
// code, and at most a short sanitised excerpt of what the document held (MAX_IGNORED_REASON).
import { MAX_JSON_DEPTH } from '../../runtime/base/json-depth.js';
import { MAX_IGNORED_REASON, type IgnoredDesired, type ParseResult } from '../protocol/index.js';

/** The version of a fleet-made document leads it (`{"version":N,...`, cloud-sync/fleet/broker/desired.ts). */
const LEADING_VERSION = /^\s*\{\s*"version"\s*:\s*(\d{1,15})\s*[,}]/;
/** Issues named in a reason, at most; and characters of one path segment (model names are the document's). */
const MAX_ISSUES = 3;
const MAX_SEGMENT = 40;
// C0 and C1 controls, DEL, and bidi controls: a reason is shown on terminals and in the console.
// eslint-disable-next-line no-control-regex
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;

/** `s` on one line, without controls, cut to `max` characters (never inside a surrogate pair). */
export function sanitised(s: string, max: number): string {
  const head = s.slice(0, max + 1).replace(UNSAFE, '?');
  if (head.length <= max) return head;
  let cut = max - 1;
  if (cut > 0 && /[\ud800-\udbff]/.test(head[cut - 1] ?? '')) cut--;
  return `${head.slice(0, cut)}…`;
}

function versionOf(payload: Buffer, json: unknown): number {
  if (json !== undefined) {
    const v = typeof json === 'object' && json !== null ? (json as { version?: unknown }).version : undefined;
    return typeof v === 'number' && Number.isSafeInteger(v) && v >= 1 ? v : 0;
  }
  // Oversized or not JSON: only the document's first bytes are looked at, never parsed whole.
  const m = LEADING_VERSION.exec(payload.subarray(0, 64).toString('latin1'));
  const v = m ? Number(m[1]) : 0;
  return Number.isSafeInteger(v) ? v : 0;
}

function what(r: Exclude<ParseResult<unknown>, { ok: true }>, size: number, maxBytes: number): string {
  switch (r.reason) {
    case 'oversized':
      return `of ${size} bytes is over cloud.maxPayloadBytes (${maxBytes})`;
    case 'depth':
      return `nests more than ${MAX_JSON_DEPTH} levels deep`;
    case 'json':
      return `is not JSON (${r.error.message.replace(/^payload is not JSON: /, '')})`;
    case 'schema': {
      const issues = r.issues.slice(0, MAX_ISSUES).map((i) => {
        const path = i.path.map((p) => sanitised(String(p), MAX_SEGMENT)).join('.') || '(root)';
        return `${path}: ${sanitised(i.message, 80)}`;
      });
      const more = r.issues.length > MAX_ISSUES ? `; and ${r.issues.length - MAX_ISSUES} more` : '';
      return `breaks the desired schema: ${issues.join('; ')}${more}`;
    }
  }
}

/** The `ignored` note for a refused document: PERCH_ERR_MQTT_PAYLOAD_INVALID with a bounded reason. */
export function refusedDesired(payload: Buffer, r: Exclude<ParseResult<unknown>, { ok: true }>, maxBytes: number): IgnoredDesired {
  const version = versionOf(payload, r.reason === 'schema' ? r.json : undefined);
  const doc = version > 0 ? `desired version ${version}` : 'a desired document (version unreadable)';
  return {
    version,
    code: 'PERCH_ERR_MQTT_PAYLOAD_INVALID',
    reason: sanitised(`${doc} ${what(r, payload.byteLength, maxBytes)}`, MAX_IGNORED_REASON),
  };
}
