// How many inference requests Perch answered during an attack, read from its /metrics (the
// control listener's, which answers while the main loop is busy): answered with a result, and
// answered with an error by PERCH_ERR_* code (inference failures, and refusals for load from
// perch_client_refusals_total). With the CPU table (cpu.ts) it gives the main thread's CPU per
// answer, which is what a change to the request path changes (docs/reliability.md).
import { sumMetric } from '../lib/perch-server.js';

export interface AnswerCounts {
  ok: number;
  /** Errors by code (inference failures and client-budget refusals). */
  errors: Record<string, number>;
}

/** The counters now; undefined when /metrics did not answer in time. */
export async function answerCounts(baseUrl: string): Promise<AnswerCounts | undefined> {
  let text: string | undefined;
  // Twice: a kept-alive connection the server has just closed fails the first (seen against the
  // minimal servers of sides.ts, whose keep-alive timeout is Node's 5 s).
  for (let tries = 0; tries < 2 && text === undefined; tries++) {
    try {
      text = await (await fetch(`${baseUrl}/metrics`, { signal: AbortSignal.timeout(10_000) })).text();
    } catch {
      // once more, then undefined
    }
  }
  if (text === undefined) return undefined;
  const errors: Record<string, number> = {};
  for (const line of text.split('\n')) {
    const m = /^perch_inference_request_failure_total\{[^}]*code="(\w+)"[^}]*\}\s+(\S+)/.exec(line);
    if (m) errors[m[1] as string] = (errors[m[1] as string] ?? 0) + Number(m[2]);
  }
  const refusals = sumMetric(text, 'perch_client_refusals_total');
  if (refusals) errors['client budget refusals'] = refusals;
  return { ok: sumMetric(text, 'perch_inference_request_success_total'), errors };
}

/** What was answered between two readings (all of it when the first is missing). */
export function answersBetween(a: AnswerCounts | undefined, b: AnswerCounts | undefined): AnswerCounts | undefined {
  if (!b) return undefined;
  const errors: Record<string, number> = {};
  for (const [code, n] of Object.entries(b.errors)) {
    const d = n - (a?.errors[code] ?? 0);
    if (d > 0) errors[code] = d;
  }
  return { ok: b.ok - (a?.ok ?? 0), errors };
}

/** Every answer, results and errors. */
export const answered = (c: AnswerCounts): number => c.ok + Object.values(c.errors).reduce((s, n) => s + n, 0);
