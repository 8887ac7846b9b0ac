// A Clock that moves only when the test says so (docs/design.md house style 7): TTLs, ages and timers
// are tested without sleeping. Monotonic and wall time advance together.
import type { Clock, TimerHandle } from '../../runtime/base/clock.js';

interface Timer {
  id: number;
  at: number;
  fn: () => void;
}

export class FakeClock implements Clock {
  private mono: number;
  private wall: number;
  private nextId = 1;
  private timers: Timer[] = [];

  constructor(wallStart = Date.UTC(2025, 0, 1), monoStart = 1000) {
    this.wall = wallStart;
    this.mono = monoStart;
  }

  now(): number {
    return this.mono;
  }

  wallNow(): number {
    return this.wall;
  }

  setTimeout(fn: () => void, ms: number): TimerHandle {
    const t: Timer = { id: this.nextId++, at: this.mono + Math.max(0, ms), fn };
    this.timers.push(t);
    return { id: t.id };
  }

  clearTimeout(handle: TimerHandle): void {
    const id = (handle as { id?: number }).id;
    this.timers = this.timers.filter((t) => t.id !== id);
  }

  /** Moves time forward, firing due timers in order (each at its own time). */
  advance(ms: number): void {
    const end = this.mono + ms;
    for (;;) {
      this.timers.sort((a, b) => a.at - b.at || a.id - b.id);
      const next = this.timers[0];
      if (!next || next.at > end) break;
      this.timers.shift();
      this.wall += next.at - this.mono;
      this.mono = next.at;
      next.fn();
    }
    this.wall += end - this.mono;
    this.mono = end;
  }

  /** Timers not fired yet. */
  get pending(): number {
    return this.timers.length;
  }

  /** Milliseconds until the next timer fires, or null when none is set. */
  nextDueIn(): number | null {
    const at = Math.min(...this.timers.map((t) => t.at));
    return Number.isFinite(at) ? at - this.mono : null;
  }
}
