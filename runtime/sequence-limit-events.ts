// A refused sequence start (maxSequences reached) is recorded as an event, at most once a minute
// per model: a client retrying in a loop must not fill the outbox.
import type { Clock } from './base/clock.js';

const EVERY_MS = 60_000;

export function sequenceLimitRecorder(clock: Clock, record: (type: string, payload: unknown) => void): (model: string, max: number) => void {
  const last = new Map<string, number>();
  return (model, max) => {
    const now = clock.now();
    if (now - (last.get(model) ?? -Infinity) < EVERY_MS) return;
    last.set(model, now);
    record('sequence.limit', { model, maxSequences: max });
  };
}
