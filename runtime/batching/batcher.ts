// The dynamic batcher of one model version (Triton's dynamic_batching, with Perch's policy).
//
// Requests wait in one FIFO per priority level. Whenever an execution slot is free, a batch is
// formed from the highest-priority oldest request (the head) plus every later request that can
// be stacked with it (same group key: equal non-batch dims and equal unbatched inputs) until
// maxBatchSize items. It is dispatched when it is full, when its size is a preferred size, or
// when the head has waited maxQueueDelayMs; otherwise a timer fires when the head's wait runs
// out. With maxQueueDelayMs 0 (the default) a request never waits for company while a slot is
// free; batches then form from what queued while every slot was busy, which gives batch-1
// latency at low load and large batches under load.
//
// Lookahead (for executors that queue work, like a session thread): while every slot is busy,
// one more batch per slot is handed over as soon as it is big enough (the smallest preferred
// size, else maxBatchSize). It waits in the executor rather than here, so the session starts
// it the moment the current batch ends instead of after a round trip through the event loop;
// under load that gap was a tenth of the session's time. At low load nothing changes. A
// request handed over this way has left the queue: its timeout no longer applies, and a
// higher-priority request arriving later runs after it. Models whose batches hold one request
// (maxBatchSize 0 or 1, or a smallest preferred size of 1) never look ahead.
import type { Clock, TimerHandle } from '../base/clock.js';
import { PerchError } from '../base/errors.js';
import { QueuedRequest, type CloseScope, type QueueOf } from './queued-request.js';

export type { CloseScope, ScopeWatcher } from './queued-request.js';

export interface BatcherOptions {
  /** Items per batch; 0 = the model takes no batch: every request runs alone. */
  maxBatchSize: number;
  maxQueueDelayMs: number;
  preferredBatchSizes: readonly number[];
  maxQueueSize: number;
  /**
   * Bytes of input waiting (not running): once the queue holds this many, more requests are
   * refused like a full queue. A request finding the queue empty is always taken (docs/models.md).
   */
  maxQueueBytes?: number;
  /**
   * Bytes of input one batch may hold (SubmitOptions.bytes summed); a request that would go over
   * waits for a later batch, and one larger than it runs alone. Unset: no bound but maxBatchSize.
   * A detector's working memory grows with the pixels of its batch: pp-ocr-det's onnxruntime
   * arena held 1.1 GB after a batch of four 960 x 960 images (docs/models.md "One batch's memory").
   */
  maxBatchBytes?: number | undefined;
  priorityLevels: number;
  /** Batches that may run at the same time. */
  concurrency: number;
  /** Hand one more big-enough batch per slot to busy executors (see above). */
  lookahead?: boolean;
}

/**
 * Slots with nothing in them, from whoever runs the batches. With lookahead, `running` counts
 * handed-over batches too, so it cannot tell that one session has gone idle while another holds
 * two; the model instance knows. Without lookahead this is `concurrency - running`.
 */
export type IdleSlots = () => number;

export interface SubmitOptions {
  /** Items this request adds to a batch (its size along the batch axis). */
  items: number;
  /** Requests are only stacked with requests of the same key. */
  groupKey: string;
  /** 1 = highest. */
  priority: number;
  /** Give up (PERCH_ERR_TIMEOUT) if still queued after this long; null = wait as long as needed. */
  timeoutMs: number | null;
  /** The client's connection: if it closes while the request is queued, the request is dropped. */
  scope?: CloseScope | undefined;
  /** Bytes the request holds while queued (its input tensors), counted against maxQueueBytes. */
  bytes?: number;
}

/** What a batch run gets: the payloads and how long each waited in the queue (ms). */
export interface BatchRun<T> {
  payloads: T[];
  queuedMs: number[];
  /**
   * A batch of one request: the client scope it watched while queued (null without one, or for a
   * larger batch). A pipeline run watches it on (pipeline-executor.ts): a client gone while its
   * image waits for decoded-pixel room leaves that line.
   */
  scope: CloseScope | null;
}

export class Batcher<T, R> implements QueueOf<T, R> {
  private levels: QueuedRequest<T, R>[][];
  private queued = 0;
  private queuedBytes = 0;
  private running = 0;
  private delayTimer: TimerHandle | null = null;
  /** When the armed delay timer is due (clock.now() time): the head's enqueuedAt + maxQueueDelayMs. */
  private delayDue = 0;
  private idleWaiters: Array<() => void> = [];
  private closedWith: PerchError | null = null;

  constructor(
    private opts: BatcherOptions,
    /** Runs one batch; resolves to one result per payload, in order. */
    private readonly runBatch: (batch: BatchRun<T>) => Promise<R[]>,
    private readonly clock: Clock,
    private readonly idleSlots: IdleSlots = () => this.opts.concurrency - this.running,
  ) {
    this.levels = Array.from({ length: opts.priorityLevels }, () => []);
  }

  /**
   * New settings while running (live config). Queued requests stay queued; fewer priority
   * levels move requests of vanished levels to the lowest remaining one.
   */
  configure(o: Partial<Omit<BatcherOptions, 'concurrency' | 'maxBatchSize'>>): void {
    this.opts = { ...this.opts, ...o };
    if (this.levels.length !== this.opts.priorityLevels) {
      const old = this.levels;
      this.levels = Array.from({ length: this.opts.priorityLevels }, (_, i) => old[i] ?? []);
      const lowest = this.levels[this.levels.length - 1] as QueuedRequest<T, R>[];
      for (const level of old.slice(this.opts.priorityLevels)) {
        for (const e of level) {
          e.priority = this.opts.priorityLevels;
          lowest.push(e);
        }
      }
      lowest.sort((a, b) => a.enqueuedAt - b.enqueuedAt);
    }
    this.pump();
  }

  /** Requests waiting to run (not those running). */
  get depth(): number {
    return this.queued;
  }

  get active(): number {
    return this.running;
  }

  /** Bytes of the requests waiting to run (SubmitOptions.bytes). */
  get bytes(): number {
    return this.queuedBytes;
  }

  /**
   * PERCH_ERR_QUEUE_FULL if a request would be refused now, else null: checked again at submit,
   * and from an HTTP request's headers before its body is read (api/http/routes.ts).
   */
  fullError(): PerchError | null {
    if (this.queued >= this.opts.maxQueueSize) {
      return new PerchError('PERCH_ERR_QUEUE_FULL', `queue full: ${this.queued} requests waiting (maxQueueSize ${this.opts.maxQueueSize})`);
    }
    // Bytes, not only requests: 1,024 queued classifier images of 110 KB held 113 MB, the most of
    // any kind in the infer flood's peak (docs/reliability.md "Where the memory goes").
    const maxBytes = this.opts.maxQueueBytes;
    if (maxBytes !== undefined && this.queued > 0 && this.queuedBytes >= maxBytes) {
      return new PerchError('PERCH_ERR_QUEUE_FULL', `queue full: ${this.queued} requests waiting hold ${this.queuedBytes} bytes (maxQueueBytes ${maxBytes})`);
    }
    return null;
  }

  submit(payload: T, o: SubmitOptions): Promise<R> {
    const refused = this.refusal(o);
    if (refused) return Promise.reject(refused);
    return new Promise<R>((resolve, reject) => this.queue(payload, o, resolve, reject));
  }

  /**
   * submit() without a promise: the outcome goes to `resolve` or `reject`, called once, from the
   * batch's settlement (or at once with the refusal of a scope already closed). A refusal of
   * submit's own (closed, full, priority) is returned instead, and nothing is called. The
   * sequence manager passes callbacks it made once per sequence: no promise and no closures per
   * stream chunk (docs/benchmarks.md, "Stream chunks on the main thread"). They must not throw:
   * the rest of the batch is settled after them.
   */
  enqueue(payload: T, o: SubmitOptions, resolve: (r: R) => void, reject: (e: Error) => void): PerchError | null {
    const refused = this.refusal(o);
    if (refused) return refused;
    this.queue(payload, o, resolve, reject);
    return null;
  }

  /** Why a request would be refused now, or null. */
  private refusal(o: SubmitOptions): PerchError | null {
    if (this.closedWith) return this.closedWith;
    const full = this.fullError();
    if (full) return full;
    if (o.priority < 1 || o.priority > this.opts.priorityLevels || !Number.isInteger(o.priority)) {
      return new PerchError('PERCH_ERR_INVALID_PARAMETER', `priority must be an integer from 1 to ${this.opts.priorityLevels}`);
    }
    return null;
  }

  private queue(payload: T, o: SubmitOptions, resolve: (r: R) => void, reject: (e: Error) => void): void {
    // Fields spelled out: spreading `o` here cost several µs per request (profiled).
    const entry = new QueuedRequest<T, R>(this, o.items, o.groupKey, o.priority, o.timeoutMs, o.bytes ?? 0, payload, this.clock.now(), resolve, reject);
    if (o.timeoutMs !== null) {
      entry.timer = this.clock.setTimeout(() => this.expire(entry), o.timeoutMs);
    }
    (this.levels[o.priority - 1] as QueuedRequest<T, R>[]).push(entry);
    this.queued++;
    this.queuedBytes += entry.bytes;
    // Registered after it is queued: a scope already closed drops it at once.
    if (o.scope) {
      entry.watched = o.scope;
      o.scope.watch(entry);
    }
    this.pump();
  }

  /** Resolves once nothing is queued or running. */
  drain(): Promise<void> {
    if (this.queued === 0 && this.running === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Rejects everything still queued (what is running finishes) and refuses new work. */
  close(reason: PerchError): void {
    this.closedWith = reason;
    if (this.delayTimer) this.clock.clearTimeout(this.delayTimer);
    this.delayTimer = null;
    for (const level of this.levels) {
      for (const e of level.splice(0)) this.settle(e, reason);
    }
    this.queued = 0;
    this.queuedBytes = 0;
    this.checkIdle();
  }

  private expire(entry: QueuedRequest<T, R>): void {
    entry.timer = null;
    this.unqueue(entry, new PerchError('PERCH_ERR_TIMEOUT', `request waited ${entry.timeoutMs} ms in the queue and was not run`));
  }

  /** @internal Its client went away (QueuedRequest.scopeClosed): the request leaves the queue (it holds the client's bytes). */
  drop(entry: QueuedRequest<T, R>): void {
    this.unqueue(entry, new PerchError('PERCH_ERR_CLIENT_GONE', 'the client closed its connection; the queued request was dropped'));
  }

  private unqueue(entry: QueuedRequest<T, R>, err: PerchError): void {
    const level = this.levels[entry.priority - 1] as QueuedRequest<T, R>[];
    const i = level.indexOf(entry);
    if (i < 0) return; // already dispatched
    level.splice(i, 1);
    this.queued--;
    this.queuedBytes -= entry.bytes;
    this.settle(entry, err);
    this.checkIdle();
    this.pump(); // the head may have changed
  }

  private settle(e: QueuedRequest<T, R>, err: Error): void {
    if (e.timer) this.clock.clearTimeout(e.timer);
    e.timer = null;
    e.unwatch();
    e.reject(err);
  }

  private pump(): void {
    while (this.idleSlots() > 0 && this.queued > 0) {
      const batch = this.formBatch();
      if (!batch) return;
      this.dispatch(batch);
    }
    if (!this.opts.lookahead) return;
    const enough = this.opts.preferredBatchSizes.length ? Math.min(...this.opts.preferredBatchSizes) : this.opts.maxBatchSize;
    if (enough < 2) return; // one-request batches: the queue's priority order and timeouts matter more
    while (this.running < 2 * this.opts.concurrency && this.queued >= enough) {
      const batch = this.formBatch(true);
      if (!batch || batch.reduce((n, e) => n + e.items, 0) < enough) return;
      this.dispatch(batch);
    }
  }

  /**
   * The next batch if it should go now; otherwise arms the delay timer and returns null.
   * `ahead`: a lookahead batch, which takes what is there and never arms the timer.
   */
  private formBatch(ahead = false): QueuedRequest<T, R>[] | null {
    const head = this.head();
    if (!head) return null;
    const max = this.opts.maxBatchSize;
    if (max === 0) return [head];

    const picked: QueuedRequest<T, R>[] = [];
    let items = 0;
    let bytes = 0;
    const maxBytes = this.opts.maxBatchBytes ?? Infinity;
    let bytesFull = false; // a request of the group was left out for maxBatchBytes: the batch is full
    let preferredCut = 0; // length of the longest prefix whose size is a preferred size
    for (const level of this.levels) {
      for (const e of level) {
        if (e.groupKey !== head.groupKey || items + e.items > max) continue;
        // The head always goes, however large: it could never run otherwise.
        if (picked.length > 0 && bytes + e.bytes > maxBytes) {
          bytesFull = true;
          continue;
        }
        picked.push(e);
        items += e.items;
        bytes += e.bytes;
        if (this.opts.preferredBatchSizes.includes(items)) preferredCut = picked.length;
        if (items === max) return picked;
      }
    }
    // Waiting for company cannot make it larger: the request it left out waits for the next batch.
    if (bytesFull) return picked;
    const waited = this.clock.now() - head.enqueuedAt;
    if (ahead || waited >= this.opts.maxQueueDelayMs) return picked;
    if (preferredCut > 0) return picked.slice(0, preferredCut);
    this.armDelay(this.opts.maxQueueDelayMs - waited, head.enqueuedAt + this.opts.maxQueueDelayMs);
    return null;
  }

  private head(): QueuedRequest<T, R> | undefined {
    for (const level of this.levels) if (level.length) return level[0];
    return undefined;
  }

  /**
   * The delay timer for the head's wait, `ms` from now. One already armed for the same moment
   * (the same head: requests joining it do not move it) is kept, not cleared and set again per
   * request: a timer of Node's per stream chunk while a session waited (docs/benchmarks.md,
   * "Stream chunks on the main thread").
   */
  private armDelay(ms: number, due: number): void {
    if (this.delayTimer) {
      if (due === this.delayDue) return;
      this.clock.clearTimeout(this.delayTimer);
    }
    this.delayDue = due;
    this.delayTimer = this.clock.setTimeout(() => {
      this.delayTimer = null;
      this.pump();
    }, ms);
  }

  private dispatch(batch: QueuedRequest<T, R>[]): void {
    if (this.delayTimer) {
      this.clock.clearTimeout(this.delayTimer);
      this.delayTimer = null;
    }
    const now = this.clock.now();
    const scope = batch.length === 1 ? (batch[0] as QueuedRequest<T, R>).watched : null;
    for (const e of batch) {
      const level = this.levels[e.priority - 1] as QueuedRequest<T, R>[];
      level.splice(level.indexOf(e), 1);
      if (e.timer) this.clock.clearTimeout(e.timer);
      e.timer = null;
      e.unwatch();
      this.queuedBytes -= e.bytes;
    }
    this.queued -= batch.length;
    this.running++;
    const run: BatchRun<T> = { payloads: batch.map((e) => e.payload), queuedMs: batch.map((e) => now - e.enqueuedAt), scope };
    let promise: Promise<R[]>;
    try {
      promise = this.runBatch(run);
    } catch (err) {
      promise = Promise.reject(err as Error);
    }
    // The slot is freed and the next batch dispatched before this batch's requests are
    // answered: the session starts on it while the main thread encodes and sends the answers,
    // instead of idling until they are out.
    void promise.then(
      (results) => {
        this.finished();
        batch.forEach((e, i) => e.resolve(results[i] as R));
      },
      (err: Error) => {
        this.finished();
        batch.forEach((e) => e.reject(err));
      },
    );
  }

  private finished(): void {
    this.running--;
    this.pump();
    this.checkIdle();
  }

  private checkIdle(): void {
    if (this.queued === 0 && this.running === 0 && this.idleWaiters.length) {
      for (const w of this.idleWaiters.splice(0)) w();
    }
  }
}
