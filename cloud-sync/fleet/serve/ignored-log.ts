// Lines about refused device messages, bounded (docs/fleet.md "serve"). A device can send
// thousands of bad or surplus chunk requests a second (bench/fleet-share.ts: 16,000/s from one
// raw client); a line each would make serve's log the attack. Each key (a reason and a device)
// gets at most one line per interval, carrying how many it held back in the interval before,
// and all keys together at most `maxLines` per interval (the rest counted on the next line).
// The counters in the `progress` line count every one.
import type { Logger } from '../../../runtime/base/log.js';

export class IgnoredLog {
  /** Keys with a line in this interval -> requests held back since. */
  private current = new Map<string, number>();
  private previous = new Map<string, number>();
  private startedAt = -Infinity;
  private lines = 0;
  /** Lines not written because the interval had `maxLines` already. */
  private overflow = 0;

  constructor(
    private readonly log: Logger,
    private readonly intervalMs = 1000,
    private readonly maxLines = 20,
    private readonly now: () => number = () => performance.now(),
  ) {}

  warn(key: string, fields: Record<string, unknown>, msg: string): void {
    const t = this.now();
    if (t - this.startedAt >= this.intervalMs) {
      this.previous = this.current;
      this.current = new Map();
      this.startedAt = t;
      this.lines = 0;
    }
    const held = this.current.get(key);
    if (held !== undefined) {
      this.current.set(key, held + 1);
      return;
    }
    if (this.lines >= this.maxLines) {
      this.overflow++;
      return;
    }
    this.lines++;
    this.current.set(key, 0);
    const before = this.previous.get(key) ?? 0;
    const skipped = this.overflow;
    this.overflow = 0;
    this.log.warn({ ...fields, ...(before ? { alsoIgnoredBefore: before } : {}), ...(skipped ? { otherLinesSkipped: skipped } : {}) }, msg);
  }
}
