// What the main thread publishes for the control listener's thread (docs/reliability.md
// "A control listener"): one SharedArrayBuffer both threads see, so the control thread reads the
// main thread's state without waiting for the main event loop. Slots are 64-bit integers read and
// written with Atomics (no torn reads).
//
// - BEAT: when the main event loop last ran a turn, in milliseconds of process.hrtime (monotonic,
//   one clock for every thread of the process; a wall clock jumps when a device without a
//   real-time clock first syncs its time, which would fail liveness for no reason).
// - READY: 1 when every model that should be loaded is (ModelRegistry.isReady), else 0.

const BEAT = 0;
const READY = 1;
const SLOTS = 2;

/** Monotonic milliseconds, the same in every thread of the process. */
export function monotonicMs(): number {
  return Number(process.hrtime.bigint() / 1_000_000n);
}

export class ControlState {
  private readonly view: BigInt64Array;

  constructor(readonly buffer: SharedArrayBuffer = new SharedArrayBuffer(SLOTS * 8)) {
    this.view = new BigInt64Array(buffer);
  }

  /** Main thread: a turn of the event loop ran now; readiness is `ready`. */
  beat(ready: boolean, now = monotonicMs()): void {
    Atomics.store(this.view, BEAT, BigInt(now));
    Atomics.store(this.view, READY, ready ? 1n : 0n);
  }

  /** Control thread: milliseconds since the main loop last beat. */
  beatAgeMs(now = monotonicMs()): number {
    return now - Number(Atomics.load(this.view, BEAT));
  }

  get ready(): boolean {
    return Atomics.load(this.view, READY) === 1n;
  }
}
