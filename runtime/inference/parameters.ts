// Request parameters Perch understands (docs/protocol.md section 3; names as Triton uses them).
// Unknown parameters are ignored, as OIP allows; known ones with a wrong type are refused.
import { PerchError } from '../base/errors.js';

export interface InferParameters {
  priority?: number;
  /** Queue timeout in ms (the wire value is microseconds). */
  timeoutMs?: number;
  /** Triton: answer every output as binary data. */
  binaryDataOutput?: boolean;
  /** Perch: use the result cache for this request (default: the model's cache.enabled). */
  cache?: boolean;
  /** Triton's sequence parameters; ids are compared as strings. */
  sequenceId?: string;
  sequenceStart?: boolean;
  sequenceEnd?: boolean;
}

function invalid(name: string, what: string): PerchError {
  return new PerchError('PERCH_ERR_INVALID_PARAMETER', `parameter '${name}' must be ${what}`);
}

export function readParameters(params: Record<string, unknown> | undefined): InferParameters {
  const out: InferParameters = {};
  if (!params) return out;
  const { priority, timeout, binary_data_output: binary, cache, sequence_id: seqId, sequence_start: start, sequence_end: end } = params;
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
  if (seqId !== undefined) {
    const ok = (typeof seqId === 'string' && seqId.length > 0 && seqId.length <= 256) || (typeof seqId === 'number' && Number.isSafeInteger(seqId) && seqId >= 0);
    if (!ok) throw invalid('sequence_id', 'a non-empty string (up to 256 characters) or a non-negative integer');
    out.sequenceId = String(seqId);
  }
  if (start !== undefined) {
    if (typeof start !== 'boolean') throw invalid('sequence_start', 'a boolean');
    out.sequenceStart = start;
  }
  if (end !== undefined) {
    if (typeof end !== 'boolean') throw invalid('sequence_end', 'a boolean');
    out.sequenceEnd = end;
  }
  if (cache !== undefined) {
    if (typeof cache !== 'boolean') throw invalid('cache', 'a boolean');
    out.cache = cache;
  }
  return out;
}
