// Full garbage collections after a burst, on every thread (docs/reliability.md "Memory after a
// burst"). Each worker thread has its own V8 heap, collected only when that heap grows: a
// session thread that received thousands of input tensors during a flood and then went idle kept
// them (about 130 MB after the infer flood, 40 s later). The idle collector runs one collection on
// the main thread and posts COLLECT to every thread registered here; each runs its own. A COLLECT
// may carry a MessagePort (`done`): the thread posts on it once its collection is over, so the
// main thread can give the freed memory back to the system after all of them (malloc_trim walks
// every thread's arena; runtime/base/malloc-trim.ts). The port keeps the answer off the threads'
// own message protocols.
// V8 is reached through its documented `--expose-gc` flag, set at run time (v8.setFlagsFromString)
// unless Node was started with it.
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { MessageChannel, type MessagePort, type Worker } from 'node:worker_threads';

/** COLLECT: the message a thread answers by collecting its heap, with the port to tell when it is done (collectThreadsDone). */
export interface CollectMessage {
  readonly type: 'collect';
  readonly done?: MessagePort;
}

export function isCollect(msg: unknown): msg is CollectMessage {
  return typeof msg === 'object' && msg !== null && (msg as { type?: unknown }).type === 'collect';
}

/** A thread calls this once it has done what a COLLECT asks: tells the asker, if it waits. */
export function collected(msg: CollectMessage): void {
  if (!msg.done) return;
  try {
    msg.done.postMessage(null);
  } finally {
    msg.done.close();
  }
}

/** How long collectThreadsDone waits for a thread (a busy one answers after its running task). */
export const COLLECT_WAIT_MS = 5000;

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

/**
 * Asks every registered thread to collect and resolves when all have answered; a thread that
 * exits, cannot be asked or does not answer within `waitMs` is not waited for. Resolves with how
 * many answered.
 */
export function collectThreadsDone(waitMs = COLLECT_WAIT_MS): Promise<number> {
  const answers: Array<Promise<boolean>> = [];
  for (const w of threads) {
    const { port1, port2 } = new MessageChannel();
    try {
      w.postMessage({ type: 'collect', done: port2 } satisfies CollectMessage, [port2]);
    } catch {
      port1.close();
      continue;
    }
    answers.push(new Promise<boolean>((resolve) => {
      const finish = (answered: boolean): void => {
        clearTimeout(timer);
        w.off('exit', onExit);
        port1.close();
        resolve(answered);
      };
      const onExit = (): void => finish(false);
      const timer = setTimeout(() => finish(false), waitMs);
      timer.unref();
      w.once('exit', onExit);
      port1.once('message', () => finish(true));
    }));
  }
  return Promise.all(answers).then((a) => a.filter(Boolean).length);
}

/**
 * One collection here and on every registered thread, resolving once the threads have answered
 * (collectThreadsDone); null if V8 refuses.
 */
export function collectEverywhere(): (() => Promise<unknown>) | null {
  const here = fullCollection();
  if (here === null) return null;
  return () => {
    here();
    return collectThreadsDone();
  };
}
