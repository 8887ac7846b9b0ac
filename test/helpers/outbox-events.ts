// What an outbox holds, read through the Outbox interface itself: claim everything, then release
// it (claims are in memory; a release makes the events the next ones claimed, as before). Only
// for tests with no uploader running, which would otherwise see the events as in flight.
import type { Outbox, OutboxEvent } from '../../runtime/store/outbox.js';

export async function storedEvents(outbox: Outbox, type?: string): Promise<OutboxEvent[]> {
  const events = await outbox.claim(Number.MAX_SAFE_INTEGER);
  await outbox.release(events.map((e) => e.seq));
  return type === undefined ? events : events.filter((e) => e.type === type);
}
