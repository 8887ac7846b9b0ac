// The `P/devices/{id}/events` payload (docs/protocol.md section 5), written as text from the outbox rows.
// The payload is already JSON in the outbox (append() made it with JSON.stringify), so it goes
// on the wire as stored: no parse and no second stringify per event. The result is exactly
// JSON.stringify of the EventsMessage object, key for key (test/cloud-sync/event-message.test.ts).
import type { OutboxEvent } from '../../runtime/port/runtime-port.js';

type WireEvent = Pick<OutboxEvent, 'eventId' | 'seq' | 'createdAt' | 'type' | 'payloadJson'>;

export class EventsEncoder {
  private readonly head: string;
  /** JSON of each event type seen: a device has a handful of types and sends them many times. */
  private readonly types = new Map<string, string>();

  constructor(deviceId: string) {
    this.head = `{"deviceId":${JSON.stringify(deviceId)},"events":[`;
  }

  /** `{"deviceId","events":[{"id","seq","ts","type","payload"}, ...]}` for events[from, to). */
  encode(events: readonly WireEvent[], from = 0, to = events.length): string {
    let out = this.head;
    for (let i = from; i < to; i++) {
      const e = events[i] as WireEvent;
      if (i > from) out += ',';
      out += `{"id":${JSON.stringify(e.eventId)},"seq":${e.seq},"ts":${e.createdAt},"type":${this.type(e.type)},"payload":${e.payloadJson}}`;
    }
    return out + ']}';
  }

  private type(t: string): string {
    let json = this.types.get(t);
    if (json === undefined) {
      json = JSON.stringify(t);
      if (this.types.size < 1024) this.types.set(t, json);
    }
    return json;
  }
}
