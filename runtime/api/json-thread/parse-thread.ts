// Large OIP JSON bodies are parsed on a thread of their own (docs/reliability.md "Large JSON
// bodies: parsed off the main thread"). JSON.parse of a 12 MB body of numbers took 100 ms and
// more of the main event loop, the loop that answers health checks (main-port health p99 1.8 s
// under the campaign's 12 MB bodies), and left about 8 times the body of garbage in the main
// heap until V8 got round to it. Here one thread parses one body at a time and collects after
// each, so a large body costs the main loop a copy-free hand-over, and parse garbage is bounded
// by one body, itself bounded by the client budget (a JSON body whose parse could take more
// than server.maxClientBytes gets 413 from its headers, client-budget.ts). The thread's heap is
// not capped with V8's resourceLimits: a worker that reaches that cap inside JSON.parse aborts
// the whole process (measured), it does not end the thread.
import { Worker } from 'node:worker_threads';
import { PerchError, type ErrorCode } from '../../base/errors.js';
import { trackThread } from '../../base/full-collection.js';
import { decodeInferJson, type DecodedBody } from './decode-body.js';
import { tooDeep, type ParseReply, type ParseTask } from './messages.js';

const WORKER_URL = new URL('./worker.js', import.meta.url);

/**
 * Bodies this large or larger go to the thread; smaller ones parse at once on the main thread
 * (a 1 MiB body takes about 5-10 ms to parse, less than a round trip to a busy thread costs).
 */
export const OFF_THREAD_JSON_BYTES = 1024 * 1024;

/**
 * The thread ends after this long with nothing to parse, and the next large body starts a new
 * one (about 30 ms): a thread kept after its first use held its V8 heap and what the C allocator
 * kept of its parses for as long as the process ran (the campaign's five attacks in a row ended
 * 124-182 MB above where they started with the thread, 100-102 MB without;
 * docs/history/reliability-notes.md "Large JSON bodies: the parse thread measured").
 */
export const JSON_THREAD_IDLE_EXIT_MS = 10_000;

/** What a body's parse is dropped with when its client goes (client-budget.ts Hold). */
export interface Releasable {
  readonly released: boolean;
  /** Calls `fn` once when released; the function returned forgets it. */
  onRelease(fn: () => void): () => void;
}

interface Pending {
  task: ParseTask;
  resolve: (d: DecodedBody) => void;
  reject: (e: Error) => void;
}

export class JsonParseThread {
  private worker: Worker | null = null;
  private busy: Pending | null = null;
  /** The thread `busy` was sent to (a thread that ended fails only its own task). */
  private busyOn: Worker | null = null;
  private readonly queue: Pending[] = [];
  private nextId = 1;
  private closed = false;
  private idleTimer: ReturnType<typeof setTimeout> | null = null;

  constructor(private readonly idleExitMs = JSON_THREAD_IDLE_EXIT_MS) {}

  /** True while a parse thread is running (it ends after idleExitMs without work). */
  get running(): boolean {
    return this.worker !== null;
  }

  /**
   * Parses, checks and decodes one OIP JSON body; small bodies on the calling thread. A body
   * whose client goes away (`gone`, its request's budget hold, released) while it waits for the
   * thread is dropped from the queue, not parsed: its client's budget was given back when it left, and the queue went on holding the
   * bodies of clients that had gone (docs/reliability.md "Large JSON bodies").
   */
  decode(json: Buffer, gone?: Releasable): Promise<DecodedBody> {
    if (this.decodesHere(json)) {
      try {
        return Promise.resolve(decodeInferJson(json));
      } catch (err) {
        return Promise.reject(err as Error);
      }
    }
    if (this.closed) return Promise.reject(new PerchError('PERCH_ERR_SHUTTING_DOWN', 'the JSON parse thread is stopped'));
    if (gone?.released) return Promise.reject(clientGone());
    return new Promise((resolve, reject) => {
      const p: Pending = {
        task: { id: this.nextId++, json: ownBuffer(json) },
        resolve: (d) => (forget?.(), resolve(d)),
        reject: (e) => (forget?.(), reject(e)),
      };
      const forget = gone?.onRelease(() => {
        const at = this.queue.indexOf(p);
        if (at < 0) return; // on the thread already: its result is let go
        this.queue.splice(at, 1);
        reject(clientGone());
      });
      this.queue.push(p);
      this.pump();
    });
  }

  /**
   * Whether decode() would decode `json` on the calling thread: then decodeInferJson(json) there
   * is the same, without decode()'s promise (an HTTP binary request's small JSON header is decoded
   * in the turn its body ends; docs/benchmarks.md, issue 20).
   */
  decodesHere(json: Uint8Array): boolean {
    return json.length < OFF_THREAD_JSON_BYTES;
  }

  /** Bodies waiting for the thread (not counting the one it parses). */
  get waiting(): number {
    return this.queue.length;
  }

  async close(): Promise<void> {
    this.closed = true;
    this.stopIdleTimer();
    for (const p of this.queue.splice(0)) p.reject(new PerchError('PERCH_ERR_SHUTTING_DOWN', 'the JSON parse thread is stopping'));
    this.busy?.reject(new PerchError('PERCH_ERR_SHUTTING_DOWN', 'the JSON parse thread is stopping'));
    this.busy = null;
    this.busyOn = null;
    const w = this.worker;
    this.worker = null;
    await w?.terminate();
  }

  private pump(): void {
    if (this.busy || this.closed) return;
    if (this.queue.length === 0) {
      this.armIdleExit();
      return;
    }
    this.stopIdleTimer();
    const p = this.queue.shift() as Pending;
    const worker = (this.worker ??= this.start());
    this.busy = p;
    this.busyOn = worker;
    try {
      worker.postMessage(p.task, [p.task.json]);
    } catch {
      worker.postMessage(p.task); // a buffer V8 will not move (Node's pool) is copied
    }
  }

  /** Ends the thread once it has had nothing to parse for idleExitMs. */
  private armIdleExit(): void {
    if (!this.worker || this.idleTimer) return;
    this.idleTimer = setTimeout(() => {
      this.idleTimer = null;
      const w = this.worker;
      if (!w || this.busy || this.queue.length > 0) return;
      this.worker = null; // its 'exit' then fails nothing: it holds no task
      void w.terminate();
    }, this.idleExitMs);
    this.idleTimer.unref();
  }

  private stopIdleTimer(): void {
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = null;
  }

  /** The task `worker` was parsing, taken off it. */
  private takeBusy(worker: Worker): Pending | null {
    if (this.busyOn !== worker) return null;
    const p = this.busy;
    this.busy = null;
    this.busyOn = null;
    return p;
  }

  private start(): Worker {
    const worker = new Worker(WORKER_URL);
    worker.unref(); // never what keeps the process alive
    trackThread(worker);
    worker.on('message', (r: ParseReply) => {
      const p = this.takeBusy(worker);
      if (p && p.task.id === r.id) {
        if (r.ok) p.resolve({ body: r.body, decoded: r.decoded });
        else p.reject(new PerchError(r.code, r.message));
      }
      this.pump();
    });
    // A reply that cannot be deserialized here (values nested thousands deep): it was lost, and the
    // body that sent it stayed `busy` for good, so every large JSON body after it waited for ever
    // and held its budget (red-team pass, session 15). Its body is refused; the thread goes on.
    worker.on('messageerror', () => {
      const p = this.takeBusy(worker);
      if (p) {
        const r = tooDeep(p.task.id) as { code: ErrorCode; message: string };
        p.reject(new PerchError(r.code, r.message));
      }
      this.pump();
    });
    // A thread that fails fails its body only; the next body starts a new thread.
    worker.on('error', (err: Error) => {
      const p = this.takeBusy(worker);
      if (this.worker === worker) this.worker = null;
      p?.reject(new PerchError('PERCH_ERR_INTERNAL', `the JSON parse thread failed: ${err.message}`));
      this.pump();
    });
    worker.on('exit', () => {
      if (this.worker === worker) this.worker = null;
      const p = this.takeBusy(worker);
      if (p) {
        p.reject(new PerchError('PERCH_ERR_INTERNAL', 'the JSON parse thread ended'));
        this.pump();
      }
    });
    return worker;
  }
}

function clientGone(): PerchError {
  return new PerchError('PERCH_ERR_CLIENT_GONE', 'the client went away before its JSON body was parsed');
}

/** An ArrayBuffer holding exactly `b`'s bytes, to move to the thread: `b`'s own when it is whole (no copy). */
function ownBuffer(b: Buffer): ArrayBuffer {
  if (b.byteOffset === 0 && b.byteLength === b.buffer.byteLength && b.buffer instanceof ArrayBuffer) return b.buffer;
  return new Uint8Array(b).buffer as ArrayBuffer;
}
