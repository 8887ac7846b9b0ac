// Time is injected (docs/design.md house style 7): the scheduler, timeouts and backoff read it from a
// Clock so tests drive time with a fake one instead of sleeping.

export type TimerHandle = { readonly __timer: unique symbol } | object;

export interface Clock {
  /** Milliseconds, monotonic (not wall time). */
  now(): number;
  /** Wall-clock milliseconds since the epoch, for timestamps that leave the process. */
  wallNow(): number;
  setTimeout(fn: () => void, ms: number): TimerHandle;
  clearTimeout(handle: TimerHandle): void;
}

export const systemClock: Clock = {
  now: () => performance.now(),
  wallNow: () => Date.now(),
  setTimeout: (fn, ms) => {
    const t = setTimeout(fn, ms);
    return t as unknown as TimerHandle;
  },
  clearTimeout: (handle) => clearTimeout(handle as unknown as NodeJS.Timeout),
};
