// Messages between the main thread and the JSON parse thread (parse-thread.ts, worker.ts).
import type { ErrorCode } from '../../base/errors.js';
import type { DecodedBody } from './decode-body.js';

/** One body to parse; `json` is moved to the thread. */
export interface ParseTask {
  id: number;
  json: ArrayBuffer;
}

export type ParseReply =
  | ({ id: number; ok: true } & DecodedBody)
  | { id: number; ok: false; code: ErrorCode; message: string };

/**
 * The answer for a body whose decoded values cannot cross between the threads: nested thousands
 * deep (in `parameters`, say), V8's structured clone overflows its stack serializing them on the
 * parse thread or deserializing them on the main one (docs/api.md).
 */
export function tooDeep(id: number): ParseReply {
  return { id, ok: false, code: 'PERCH_ERR_INVALID_MESSAGE', message: 'the request nests JSON values too deeply to be handed from the JSON parse thread (docs/api.md)' };
}
