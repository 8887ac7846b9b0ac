// The events payload is written as text from the stored JSON (event-message.ts); it must be
// exactly what JSON.stringify of the EventsMessage object gives, for any type and payload.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { EventsEncoder } from '../../cloud-sync/agent/event-message.js';
import { eventsSchema } from '../../cloud-sync/protocol/index.js';

const event = fc.record({
  eventId: fc.uuid(),
  seq: fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }),
  createdAt: fc.integer({ min: 0, max: 4_102_444_800_000 }),
  type: fc.string({ minLength: 1, unit: 'binary' }),
  payload: fc.jsonValue(),
});

void test('EventsEncoder output is JSON.stringify of the EventsMessage, for any events and slice', () => {
  fc.assert(
    fc.property(fc.string({ minLength: 1, maxLength: 40 }), fc.array(event, { minLength: 1, maxLength: 8 }), fc.nat(), fc.nat(), (deviceId, evs, a, b) => {
      const rows = evs.map((e) => ({ ...e, payloadJson: JSON.stringify(e.payload) }));
      const from = a % rows.length;
      const to = from + 1 + (b % (rows.length - from));
      const text = new EventsEncoder(deviceId).encode(rows, from, to);
      const expected = JSON.stringify({
        deviceId,
        events: rows.slice(from, to).map((e) => ({ id: e.eventId, seq: e.seq, ts: e.createdAt, type: e.type, payload: JSON.parse(e.payloadJson) as unknown })),
      });
      assert.equal(text, expected);
    }),
  );
});

void test('EventsEncoder output parses against the protocol schema', () => {
  const enc = new EventsEncoder('dev-1');
  const rows = [1, 2].map((seq) => ({ eventId: `id-${seq}`, seq, createdAt: 1_700_000_000_000, type: 'sensor.reading', payloadJson: '{"v":"\\u2028é"}' }));
  const msg = eventsSchema.parse(JSON.parse(enc.encode(rows)));
  assert.deepEqual(msg.events.map((e) => e.seq), [1, 2]);
  assert.deepEqual(msg.events[0]?.payload, { v: '\u2028é' });
});
