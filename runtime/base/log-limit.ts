// Log lines a flood can repeat thousands of times a second (a broker, or a peer with publish
// rights, sending bad MQTT messages: docs/cloud-sync.md "Bad payloads"), written at most once per
// interval and key: the first at once; the ones after it, within the interval, are counted, and
// when the interval ends the latest of them is written with their count, so a flood that stops is
// still counted in the log. A flood costs a line per key every interval, not one per message; the
// counts of every message stay in the counters (agent.stats()). Keys are a fixed set of kinds,
// never a peer's words (a topic), so the map stays small. Inference failures are limited the same
// way (runtime/inference/failure-log.ts).
import type { Clock, TimerHandle } from './clock.js';

/** How often a key may write a line (as inference failures: runtime/inference/failure-log.ts). */
export const LOG_LIMIT_INTERVAL_MS = 10_000;

/** Writes one line; `notLogged`: the lines of its key not written since the last one, this one included (0 for a first line). */
export type LimitedLine = (notLogged: number) => void;

interface Held {
  /** Lines not written since the key's last line. */
  count: number;
  /** The latest of them, written with the count when the interval ends. */
  latest: LimitedLine | null;
  timer: TimerHandle;
}

export class LogLimiter {
  private readonly held = new Map<string, Held>();

  constructor(
    private readonly clock: Clock,
    private readonly intervalMs = LOG_LIMIT_INTERVAL_MS,
  ) {}

  /** Writes the line now if its key has been quiet for an interval, else holds it back and counts it. */
  line(key: string, write: LimitedLine): void {
    const h = this.held.get(key);
    if (h !== undefined) {
      h.count++;
      h.latest = write;
      return;
    }
    this.held.set(key, { count: 0, latest: null, timer: this.clock.setTimeout(() => this.intervalEnded(key), this.intervalMs) });
    write(0);
  }

  /** Writes what is held back, with its count, and stops every timer (the owner stops). */
  close(): void {
    const held = [...this.held.values()];
    this.held.clear();
    for (const h of held) {
      this.clock.clearTimeout(h.timer);
      if (h.latest !== null) h.latest(h.count);
    }
  }

  private intervalEnded(key: string): void {
    const h = this.held.get(key);
    if (h === undefined) return;
    if (h.latest === null) {
      this.held.delete(key); // quiet for a whole interval: the next line is written at once
      return;
    }
    const { count, latest } = h;
    h.count = 0;
    h.latest = null;
    h.timer = this.clock.setTimeout(() => this.intervalEnded(key), this.intervalMs);
    latest(count);
  }
}

/** The count a held-back line carries (nothing on a first line). */
export function sinceLastLine(notLogged: number): { notLoggedSinceLastLine?: number } {
  return notLogged > 0 ? { notLoggedSinceLastLine: notLogged } : {};
}
