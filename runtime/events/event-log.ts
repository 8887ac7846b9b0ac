// Events on their way to the cloud: every one is made durable in the outbox before anyone is
// told it exists (the `emit` answer, the WebSocket `events` topic). The runtime records its own
// events here too (models loaded, failed, unloaded; store incidents).
import type { Bus } from '../base/bus.js';
import { toPerchError } from '../base/errors.js';
import type { Logger } from '../base/log.js';
import type { Tracing } from '../base/tracing.js';
import type { AppendResult, Outbox } from '../store/outbox.js';

export class EventLog {
  constructor(
    private readonly outbox: Outbox,
    private readonly bus: Bus,
    private readonly log: Logger,
    /** OpenTelemetry (docs/observability.md): while on, each event is a `perch.event.emit` span. */
    private readonly tracing?: Tracing,
  ) {}

  /**
   * Resolves once the event is durable; rejects with a PERCH_ERR_STORE_* / EVENT_TOO_LARGE code.
   * `parent`: the emitter's traceparent, if it sent one.
   */
  async emit(type: string, payload: unknown, parent?: string): Promise<AppendResult> {
    if (this.tracing?.enabled) return this.emitTraced(this.tracing, type, payload, parent);
    const r = await this.outbox.append(type, payload);
    this.bus.emit('event', { eventId: r.eventId, seq: r.seq, type, payload });
    return r;
  }

  /** The event row keeps the emit span's traceparent: its upload links to it, even after a restart. */
  private async emitTraced(tracing: Tracing, type: string, payload: unknown, parent: string | undefined): Promise<AppendResult> {
    const span = tracing.startSpan('perch.event.emit', { parent, kind: 'producer', attributes: { 'perch.event.type': type } });
    const appendStarted = performance.now();
    try {
      const r = await this.outbox.append(type, payload, tracing.traceparent(span));
      tracing.record('perch.outbox.append', span, appendStarted, performance.now(), { 'perch.event.seq': r.seq });
      span.setAttributes({ 'perch.event.id': r.eventId, 'perch.event.seq': r.seq });
      tracing.end(span);
      this.bus.emit('event', { eventId: r.eventId, seq: r.seq, type, payload });
      return r;
    } catch (err) {
      const e = toPerchError(err);
      tracing.end(span, e.code, e.message);
      throw err;
    }
  }

  /** The runtime's own events and the agent's: a failure to record one is logged, never thrown at the caller. */
  record(type: string, payload: unknown): void {
    this.emit(type, payload).catch((err: unknown) => {
      const e = toPerchError(err);
      // A read-only store was reported once, at start-up; each event it cannot take is no news.
      const level = e.code === 'PERCH_ERR_STORE_READONLY' ? 'debug' : 'warn';
      this.log[level]({ type, code: e.code, err: e.message }, 'event not recorded');
    });
  }
}
