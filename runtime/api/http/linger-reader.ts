// Reading lingering connections a few at a time (lingering-close.ts, docs/reliability.md
// "Malformed HTTP"). A connection that is read takes up to 32 reads of 64 KiB in one poll phase
// of the event loop (libuv), all of it parsed and discarded there. Each lingering connection had
// a timer of its own to read one turn every 50 ms; refused together, 60 of them were read in the
// same turn, up to 120 MB of it. Here one timer reads at most LINGER_READS_PER_TICK of them per
// tick, in turn, so no turn reads more than a few MB of discarded bytes however many linger.
import type { Clock, TimerHandle } from '../../base/clock.js';
import type { Parkable } from '../intake.js';

/** How often lingering connections are read. */
export const LINGER_TICK_MS = 10;
/** How many of them are read per tick (each for one turn of the loop), the longest-waiting first. */
export const LINGER_READS_PER_TICK = 2;

export class LingerReader {
  /** In the order they are read next (a Set keeps insertion order). */
  private readonly waiting = new Set<Parkable>();
  private timer: TimerHandle | null = null;

  constructor(private readonly clock: Clock) {}

  /** Stops reading `conn`; from now on it is read in its turn. */
  add(conn: Parkable): void {
    conn.pause();
    this.waiting.add(conn);
    this.arm();
  }

  remove(conn: Parkable): void {
    this.waiting.delete(conn);
  }

  /** How many connections linger now. */
  get size(): number {
    return this.waiting.size;
  }

  private arm(): void {
    if (this.timer === null && this.waiting.size > 0) this.timer = this.clock.setTimeout(() => this.tick(), LINGER_TICK_MS);
  }

  private tick(): void {
    this.timer = null;
    const turn: Parkable[] = [];
    for (const conn of this.waiting) {
      if (turn.length === LINGER_READS_PER_TICK) break;
      turn.push(conn);
    }
    for (const conn of turn) {
      this.waiting.delete(conn);
      if (conn.closed) continue;
      this.waiting.add(conn); // to the back
      conn.resume();
    }
    // Read during this turn's poll phase, paused again in its check phase.
    setImmediate(() => {
      for (const conn of turn) if (!conn.closed) conn.pause();
      this.arm();
    });
  }
}
