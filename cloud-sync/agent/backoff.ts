// Reconnect delays: exponential backoff with FULL jitter (AWS Architecture Blog, "Exponential
// Backoff And Jitter"): after a broker outage thousands of devices would otherwise reconnect in
// lock-step and knock it over again. The delay is drawn uniformly between `minMs` and the
// exponential ceiling `min(maxMs, minMs * 2^attempt)`; `minMs` stays a floor so a flapping link
// never spins.

export interface BackoffOptions {
  minMs: number;
  maxMs: number;
  /** [0, 1) source, injectable so tests can pin the draw. */
  random?: () => number;
}

/** The ceiling of attempt `attempt` (0-based): minMs, 2*minMs, 4*minMs, ... capped at maxMs. */
export function backoffCeiling(attempt: number, minMs: number, maxMs: number): number {
  const cap = Math.max(minMs, maxMs);
  // 2^attempt overflows to Infinity long after it passed any sane cap; Math.min handles that.
  return Math.min(cap, minMs * 2 ** Math.max(0, attempt));
}

export function fullJitterDelay(attempt: number, opts: BackoffOptions): number {
  const random = opts.random ?? Math.random;
  const ceiling = backoffCeiling(attempt, opts.minMs, opts.maxMs);
  return Math.round(opts.minMs + random() * (ceiling - opts.minMs));
}

/** Attempt counter: `next()` gives the delay before the next try, `reset()` after a success. */
export class Backoff {
  private attempt = 0;

  constructor(private readonly opts: BackoffOptions) {}

  next(): number {
    return fullJitterDelay(this.attempt++, this.opts);
  }

  reset(): void {
    this.attempt = 0;
  }

  get attempts(): number {
    return this.attempt;
  }
}
