// InferParameter maps (inference.proto) <-> the plain parameter objects the request path reads
// (runtime/inference/parameters.ts; names as Triton uses them). int64/uint64 values arrive as
// decimal strings: they become numbers when exact, so `sequence_id` 7 and "7" are one sequence
// as over HTTP, and stay strings past 2^53.
import type { InferParameterMsg, ParameterMap } from './messages.js';

function longValue(s: string): number | string {
  const n = Number(s);
  return Number.isSafeInteger(n) ? n : s;
}

export function fromParameterMap(map: ParameterMap | undefined): Record<string, unknown> | undefined {
  if (!map) return undefined;
  const keys = Object.keys(map);
  if (keys.length === 0) return undefined;
  const out: Record<string, unknown> = {};
  for (const k of keys) {
    const p = map[k] as InferParameterMsg;
    switch (p.parameter_choice) {
      case 'bool_param': out[k] = p.bool_param; break;
      case 'int64_param': out[k] = longValue(p.int64_param ?? '0'); break;
      case 'uint64_param': out[k] = longValue(p.uint64_param ?? '0'); break;
      case 'double_param': out[k] = p.double_param; break;
      case 'string_param': out[k] = p.string_param; break;
      default: break; // a parameter with no value set carries nothing
    }
  }
  return out;
}

/** Response parameters (booleans, integers, strings) as InferParameters. */
export function toParameterMap(params: Record<string, unknown>): ParameterMap {
  const out: ParameterMap = {};
  for (const [k, v] of Object.entries(params)) {
    if (typeof v === 'boolean') out[k] = { bool_param: v };
    else if (typeof v === 'number') out[k] = Number.isInteger(v) ? { int64_param: String(v) } : { double_param: v };
    else if (typeof v === 'string') out[k] = { string_param: v };
  }
  return out;
}
