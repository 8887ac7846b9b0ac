// Which WebSocket frames the intake paces (intake.ts): a frame that may bring inference work is
// paced, other ones only while their connection has messages unanswered (connection.ts).

/** Text frames up to this size are looked at before the intake paces them (mayInfer). */
const LOOKED_AT_BYTES = 4096;
const INFER = Buffer.from('infer');
const BACKSLASH = 0x5c;

/**
 * Whether a frame may bring inference work: the intake paces such frames, and other ones only
 * while the connection has messages unanswered, so a client that polls status one message at a
 * time is never parked while the loop lags (docs/reliability.md "Control plane first"; every
 * frame was paced until 30 November 2026), and one that floods status is, as before (paced by
 * kind alone, 20 such clients doubled health's p50 on the main port). A binary frame is an infer
 * message. A text frame's op can be the string "infer" only if its text holds those five letters
 * or an escape (a backslash), so a small frame with neither is surely something else; a larger
 * one counts as inference without a look.
 */
export function mayInfer(data: Buffer, isBinary: boolean): boolean {
  return isBinary || data.length > LOOKED_AT_BYTES || data.includes(INFER) || data.includes(BACKSLASH);
}
