// The spans of one inference request (docs/observability.md): `perch.request` from the moment the
// API has it to the moment its answer is written, with children `perch.receive` (reading and
// decoding), `perch.queue` and `perch.compute` (added by the batch it rides in,
// batching/model-instance.ts) and `perch.answer` (encoding and writing). Made only while tracing
// is on; with it off a request carries `undefined` and nothing here runs.
import type { Span } from '@opentelemetry/api';
import type { Tracing } from './tracing.js';

export type Transport = 'http' | 'ws' | 'grpc';

export class RequestTrace {
  readonly span: Span;
  private readonly receivedAt: number;
  private answerAt = 0;
  private ended = false;

  /** `parent`: the traceparent the client sent (header, metadata or message field), if any. */
  constructor(readonly tracing: Tracing, transport: Transport, parent: string | undefined) {
    this.receivedAt = performance.now();
    this.span = tracing.startSpan('perch.request', { parent, kind: 'server', start: this.receivedAt, attributes: { 'perch.transport': transport } });
  }

  /** The request reached the inference path: it is read and decoded. */
  received(model: string): void {
    this.span.setAttribute('perch.model', model);
    this.tracing.record('perch.receive', this.span, this.receivedAt, performance.now());
  }

  /** Its result is ready; what follows is encoding and writing the answer. */
  answering(version: string, cached: boolean): void {
    this.span.setAttributes({ 'perch.version': version, 'perch.cached': cached });
    this.answerAt = performance.now();
  }

  /** The answer is written (or the request failed with `code`). Idempotent. */
  end(code?: string, message?: string): void {
    if (this.ended) return;
    this.ended = true;
    const now = performance.now();
    if (this.answerAt > 0 && code === undefined) this.tracing.record('perch.answer', this.span, this.answerAt, now);
    this.tracing.end(this.span, code, message, now);
  }
}
