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
