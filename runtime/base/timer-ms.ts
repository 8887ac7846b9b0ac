// Durations that end up in a Node timer (setTimeout, setInterval). Node takes at most 2^31 - 1 ms
// (about 24.8 days): a longer delay is not refused but fires after 1 ms with a
// TimeoutOverflowWarning, so `server.shutdownTimeoutMs: 1e12` made every SIGTERM exit 1 at once
// ("shutdown timed out"), a heartbeat or snapshot interval ran every millisecond and a sequence's
// idle timer re-armed itself every millisecond. Such a value is refused where it is configured
// (docs/config.md, docs/models.md).
import { z } from 'zod';

export const MAX_TIMER_MS = 2_147_483_647;

/** A whole number of milliseconds from `min` up to what a Node timer can wait. */
export function timerMs(min: number): z.ZodNumber {
  return z.number().int().min(min).max(MAX_TIMER_MS, `at most ${MAX_TIMER_MS} (about 24.8 days: the longest a timer can wait)`);
}
