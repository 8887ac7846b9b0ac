// JSON.parse for large OIP bodies, with their large arrays of numbers left in the bytes
// (tensor/json-number-run.ts; docs/reliability.md "Large JSON bodies"). Each run is replaced in
// the text by a placeholder object keyed by a random name a client cannot guess, and the text
// left (the body without its numbers: a few hundred bytes) is parsed. A placeholder that is an
// input's `data` becomes the NumberRun, which decodeJsonData reads into the tensor; any other is
// put back as the array JSON.parse would have made, so the result is JSON.parse's in every case.
import { randomBytes } from 'node:crypto';
import { PerchError } from '../../base/errors.js';
import { findNumberRuns, MIN_RUN_BYTES, NumberRun } from '../../tensor/json-number-run.js';

interface Found {
  holder: Record<string, unknown>;
  key: string;
  run: NumberRun;
}

/** JSON.parse of `json` (UTF-8), the large number arrays of its inputs' `data` left as NumberRuns. */
export function parseWithNumberRuns(json: Uint8Array, minRunBytes = MIN_RUN_BYTES): unknown {
  const runs = findNumberRuns(json, minRunBytes);
  const text = Buffer.from(json.buffer, json.byteOffset, json.byteLength);
  if (runs.length === 0) return parse(text.toString('utf8'));
  const mark = `perch-number-run-${randomBytes(12).toString('hex')}`;
  const parts: Buffer[] = [];
  let at = 0;
  runs.forEach((run, k) => {
    parts.push(text.subarray(at, run.start), Buffer.from(`{"${mark}":${k}}`));
    at = run.end;
  });
  parts.push(text.subarray(at));
  const found: Found[] = [];
  const body = parse(Buffer.concat(parts).toString('utf8'), function revive(this: Record<string, unknown>, key: string, value: unknown): unknown {
    if (typeof value !== 'object' || value === null || !Object.hasOwn(value, mark)) return value;
    const run = runs[(value as Record<string, number>)[mark] as number] as NumberRun;
    if (key !== 'data') return run.toJson();
    found.push({ holder: this, key, run });
    return run;
  });
  // Only an input's data stays a run; a `data` anywhere else gets its array back.
  const inputs = new Set<unknown>(isRecord(body) && Array.isArray(body.inputs) ? body.inputs : []);
  for (const f of found) if (!inputs.has(f.holder)) f.holder[f.key] = f.run.toJson();
  return body;
}

function parse(text: string, reviver?: (this: Record<string, unknown>, key: string, value: unknown) => unknown): unknown {
  try {
    return JSON.parse(text, reviver);
  } catch (err) {
    throw new PerchError('PERCH_ERR_MALFORMED_JSON', `not valid JSON: ${(err as Error).message}`);
  }
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
