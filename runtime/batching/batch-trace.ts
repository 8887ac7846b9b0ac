// The spans of one batch (docs/observability.md): one `perch.batch` span per session run, shared
// by the requests that rode in it, with children `perch.stack`, `perch.session.run` and
// `perch.split`, and a link to each request's `perch.request` span. Each traced request gets
// `perch.queue` (its wait) and `perch.compute` (its batch, linking to `perch.batch`). Made only
// while tracing is on and the batch holds a traced request.
import type { Span } from '@opentelemetry/api';
import type { RequestTrace } from '../base/request-trace.js';
import type { Tracing } from '../base/tracing.js';
import { toPerchError } from '../base/errors.js';
import type { BatchRun } from './batcher.js';
import type { PreparedRequest } from './prepare.js';

export class BatchTrace {
  private constructor(
    private readonly tracing: Tracing,
    private readonly span: Span,
    private readonly requests: RequestTrace[],
    private readonly dispatchedAt: number,
    private readonly attributes: Record<string, number | boolean>,
  ) {}

  /**
   * At dispatch; null when no request of the batch is traced. `ahead`: handed to a session still
   * running another batch (the batcher's lookahead), so `perch.compute` holds its wait behind that
   * batch as well as the thread hops.
   */
  static start(tracing: Tracing, model: string, version: number, run: BatchRun<PreparedRequest>, items: number, ahead: boolean): BatchTrace | null {
    const requests: RequestTrace[] = [];
    const now = performance.now();
    run.payloads.forEach((p, i) => {
      if (!p.trace) return;
      requests.push(p.trace);
      tracing.record('perch.queue', p.trace.span, now - (run.queuedMs[i] ?? 0), now);
    });
    if (requests.length === 0) return null;
    const attributes = { 'perch.batch.size': items, 'perch.batch.requests': run.payloads.length, 'perch.batch.ahead': ahead };
    const span = tracing.startSpan('perch.batch', {
      start: now,
      links: requests.map((r) => r.span),
      attributes: { 'perch.model': model, 'perch.version': String(version), ...attributes },
    });
    return new BatchTrace(tracing, span, requests, now, attributes);
  }

  /**
   * The batch ran: stacking from `stackAt` for `stackMs`, the session's own `runMs` (measured
   * where it ran, shown ending when its outputs came back), splitting from `splitAt` to `doneAt`.
   */
  ran(stackAt: number, stackMs: number, runMs: number, splitAt: number, doneAt: number): void {
    this.tracing.record('perch.stack', this.span, stackAt, stackAt + stackMs);
    this.tracing.record('perch.session.run', this.span, splitAt - runMs, splitAt);
    this.tracing.record('perch.split', this.span, splitAt, doneAt);
    this.tracing.end(this.span, undefined, undefined, doneAt);
    for (const r of this.requests) this.tracing.record('perch.compute', r.span, this.dispatchedAt, doneAt, this.attributes, [this.span]);
  }

  failed(err: unknown): void {
    const e = toPerchError(err);
    const now = performance.now();
    this.tracing.end(this.span, e.code, e.message, now);
    for (const r of this.requests) this.tracing.record('perch.compute', r.span, this.dispatchedAt, now, this.attributes, [this.span]);
  }
}
