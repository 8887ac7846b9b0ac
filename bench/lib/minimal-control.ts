// What the minimal servers (bench/lib/minimal-server.ts, bench/lib/minimal-streams-server.ts)
// answer beside inference, for the overload campaign (bench/reliability/overload.ts): health as
// Perch answers it (docs/protocol.md section 3: 200 {"live": true} / {"ready": true}, no check
// behind it) and, on /metrics, the two counters the campaign reads for the answers it gave
// (bench/reliability/answers.ts), under Perch's names: results, and errors by code. Nothing else
// of Perch's /metrics exists here; the campaign prints '-' for it.
import type { IncomingMessage, ServerResponse } from 'node:http';

export interface AnswerCounter {
  ok: number;
  errors: Record<string, number>;
}

export const newCounter = (): AnswerCounter => ({ ok: 0, errors: {} });

export function countError(c: AnswerCounter, code: string): void {
  c.errors[code] = (c.errors[code] ?? 0) + 1;
}

const json = (res: ServerResponse, body: string): void => void res.writeHead(200, { 'content-type': 'application/json' }).end(body);

/** Answers the request when it is health or /metrics (true), else leaves it (false). */
export function controlAnswer(req: IncomingMessage, res: ServerResponse, counter: AnswerCounter): boolean {
  if (req.method !== 'GET') return false;
  if (req.url === '/v2/health/live') json(res, '{"live":true}');
  else if (req.url === '/v2/health/ready') json(res, '{"ready":true}');
  else if (req.url === '/metrics') {
    const lines = [`perch_inference_request_success_total ${counter.ok}`];
    for (const [code, n] of Object.entries(counter.errors)) lines.push(`perch_inference_request_failure_total{code="${code}"} ${n}`);
    res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' }).end(`${lines.join('\n')}\n`);
  } else return false;
  return true;
}
