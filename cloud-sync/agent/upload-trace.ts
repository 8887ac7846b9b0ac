// The span of one event upload (docs/observability.md): `perch.event.upload`, from publish to
// PUBACK, a child of the first traced event's `perch.event.emit` (the traceparent kept in its
// outbox row, so this holds after a restart too) and linked to every traced event of the message.
// Its own traceparent crosses MQTT as the v5 user property `traceparent`, which `perch fleet
// serve` takes as the parent of its ingest span. MQTT 3.1.1 has no properties: the trace ends here.
import type { IClientPublishOptions } from 'mqtt';
import type { Span } from '@opentelemetry/api';
import type { Tracing } from '../../runtime/base/tracing.js';
import type { OutboxEvent } from '../../runtime/port/runtime-port.js';

export interface UploadSpan {
  span: Span;
  properties: IClientPublishOptions['properties'] | undefined;
}

export function uploadSpan(tracing: Tracing, events: readonly OutboxEvent[], v5: boolean): UploadSpan | null {
  const traced: string[] = [];
  for (const e of events) if (e.traceparent) traced.push(e.traceparent);
  if (traced.length === 0) return null;
  const first = events[0] as OutboxEvent;
  const last = events[events.length - 1] as OutboxEvent;
  const span = tracing.startSpan('perch.event.upload', {
    parent: traced[0],
    kind: 'producer',
    links: traced,
    attributes: { 'perch.events': events.length, 'perch.event.first_seq': first.seq, 'perch.event.last_seq': last.seq },
  });
  return { span, properties: v5 ? { userProperties: { traceparent: tracing.traceparent(span) } } : undefined };
}
