// The overload campaign's sides (docs/reliability.md "The main port's p99: the minimal server
// beside it"): Perch, and issue 20's hand-written minimal servers (bench/lib/minimal-server.ts,
// minimal-streams-server.ts), which serve an attack's wire with the same model on a session
// thread and nothing else (no validation, budgets, queues, logs; a WebSocket read no faster
// than its answers go out). What the minimal server's health p99 is under the same attack on
// the same host is the limit beside Perch's. An attack whose wire no minimal server speaks (the
// held bodies, the JSON bodies, the slow headers) runs against Perch alone.
// PERCH_CAMPAIGN_SIDES=perch,minimal (the default), perch, or minimal.
import { join } from 'node:path';
import { SHIPPED_MODELS } from '../../test/helpers/paths.js';
import { buildRepository, MINIMAL_SERVER, MINIMAL_STREAMS_SERVER, startPerch, type PerchServer } from '../lib/perch-server.js';

export type Side = 'perch' | 'minimal';

export const SIDES: Side[] = (() => {
  const sides = (process.env.PERCH_CAMPAIGN_SIDES ?? 'perch,minimal').split(',').map((s) => s.trim()).filter(Boolean);
  for (const s of sides) if (s !== 'perch' && s !== 'minimal') throw new Error(`PERCH_CAMPAIGN_SIDES: '${s}' is not perch or minimal`);
  if (sides.length === 0) throw new Error('PERCH_CAMPAIGN_SIDES names no side');
  return sides as Side[];
})();

/** The shipped model file Perch serves (version 1), for the minimal server to load the same one. */
export const shippedModel = (model: string): string => join(SHIPPED_MODELS, model, '1', 'model.onnx');

/** The never-reading clients' wire: silero-vad sequences, two session threads (the shipped instances: 2). */
export const MINIMAL_SEQUENCES = [MINIMAL_STREAMS_SERVER, shippedModel('silero-vad')];
/** The infer flood's: pp-ocr-cls over HTTP and WebSocket binary, one session thread (Perch's default executor). */
export const MINIMAL_FLOOD = [MINIMAL_SERVER, shippedModel('pp-ocr-cls'), 'worker', 'pp-ocr-cls'];

/** A minimal server in its own process, with the campaign's node flags and environment for it. */
export function startMinimal(command: string[], nodeArgs: string[], env?: Record<string, string>): Promise<PerchServer> {
  return startPerch({ repository: buildRepository([]), ownRepository: true, command, nodeArgs, readyTimeoutMs: 60_000, ...(env ? { env } : {}) });
}

/** '-' for a figure the side does not have (NaN, undefined), else the figure. */
export const fig = (x: number | undefined): string => (x === undefined || Number.isNaN(x) ? '-' : String(x));

/** Perch / minimal, two decimals, or '-' when either is missing. */
export function ratio(perch: number | undefined, minimal: number | undefined): string {
  if (perch === undefined || minimal === undefined || !(minimal > 0) || Number.isNaN(perch)) return '-';
  return (perch / minimal).toFixed(2);
}
