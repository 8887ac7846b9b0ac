// Full garbage collections after a burst, on every thread (docs/reliability.md "Memory after a
// burst"). Each worker thread has its own V8 heap, collected only when that heap grows: a
// session thread that received thousands of input tensors during a flood and then went idle kept
// them (about 130 MB after the infer flood, 40 s later). The idle collector runs one collection on
// the main thread and posts COLLECT to every thread registered here; each runs its own.
// V8 is reached through its documented `--expose-gc` flag, set at run time (v8.setFlagsFromString)
// unless Node was started with it.
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { Worker } from 'node:worker_threads';

/** The message a thread answers by collecting its heap (no reply). */
export const COLLECT = { type: 'collect' } as const;

export function isCollect(msg: unknown): boolean {
  return typeof msg === 'object' && msg !== null && (msg as { type?: unknown }).type === 'collect';
}

/** V8's full collection for the calling thread; null if V8 refuses. */
export function fullCollection(): (() => void) | null {
  const existing = (globalThis as { gc?: () => void }).gc;
  if (typeof existing === 'function') return existing;
  try {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as unknown;
    return typeof gc === 'function' ? (gc as () => void) : null;
  } catch {
    return null;
  }
}

const threads = new Set<Worker>();

/** Registers a worker thread whose message handler answers COLLECT, until it exits. */
export function trackThread(worker: Worker): void {
  threads.add(worker);
  worker.once('exit', () => threads.delete(worker));
}

/** Threads registered now. */
export function trackedThreads(): number {
  return threads.size;
}

/** Asks every registered thread to collect; returns how many were asked. */
export function collectThreads(): number {
  let asked = 0;
  for (const w of threads) {
    try {
      w.postMessage(COLLECT);
      asked++;
    } catch {
      // a thread that is going away has nothing to give back
    }
  }
  return asked;
}

/** One collection here and on every registered thread; null if V8 refuses. */
export function collectEverywhere(): (() => void) | null {
  const here = fullCollection();
  if (here === null) return null;
  return () => {
    here();
    collectThreads();
  };
}
