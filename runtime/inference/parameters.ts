// Request parameters Perch understands (PROTOCOL section 3; names as Triton uses them).
// Unknown parameters are ignored, as OIP allows; known ones with a wrong type are refused.
import { PerchError } from '../errors.js';

export interface InferParameters {
  priority?: number;
  /** Queue timeout in ms (the wire value is microseconds). */
  timeoutMs?: number;
  /** Triton: answer every output as binary data. */
  binaryDataOutput?: boolean;
  /** Perch: use the result cache for this request (default: the model's cache.enabled). */
  cache?: boolean;
}

function invalid(name: string, what: string): PerchError {
  return new PerchError('PERCH_ERR_INVALID_PARAMETER', `parameter '${name}' must be ${what}`);
}

export function readParameters(params: Record<string, unknown> | undefined): InferParameters {
  const out: InferParameters = {};
  if (!params) return out;
  const { priority, timeout, binary_data_output: binary, cache } = params;
  if (priority !== undefined) {
    if (typeof priority !== 'number' || !Number.isInteger(priority) || priority < 1) throw invalid('priority', 'an integer >= 1 (1 = highest)');
    out.priority = priority;
  }
  if (timeout !== undefined) {
    if (typeof timeout !== 'number' || !Number.isInteger(timeout) || timeout < 0) throw invalid('timeout', 'a non-negative integer (microseconds)');
    out.timeoutMs = timeout / 1000;
  }
  if (binary !== undefined) {
    if (typeof binary !== 'boolean') throw invalid('binary_data_output', 'a boolean');
    out.binaryDataOutput = binary;
  }
  if (cache !== undefined) {
    if (typeof cache !== 'boolean') throw invalid('cache', 'a boolean');
    out.cache = cache;
  }
  return out;
}
