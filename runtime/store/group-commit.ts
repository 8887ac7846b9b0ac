// Group commit: every submit made in the same tick of the event loop goes into one transaction,
// flushed on setImmediate (after the I/O callbacks of this loop turn, so frames read together
// from many WebSocket clients share one fsync). Each submitter's promise settles only after
// that transaction committed, or rejects if it failed; nothing is half-acknowledged.
//
// The commit may be synchronous (better-sqlite3: the outbox, settled in the same flush) or
// asynchronous (a database server: `perch fleet serve` on PostgreSQL, docs/fleet.md "Group
// commit"). One commit is in flight at a time: what is submitted meanwhile waits and goes in the
// next one, started as soon as the one in flight settled, so a slow commit makes larger groups
// rather than more concurrent transactions.

/** One result per item: a value, or an Error for an item the commit refused (the others still commit). */
export type CommitFn<I, O> = (items: readonly I[]) => Array<O | Error> | Promise<Array<O | Error>>;

export interface GroupCommitOptions {
  /**
   * When a group of several items fails as a whole, commit each item alone (one by one, still
   * one commit at a time) so that one item the store refuses does not take the others down; this
   * is called first (to log it). Without it every item of the group rejects.
   */
  retryAlone?: (err: unknown, items: number) => void;
  /**
   * 'turn' (default): flush one turn later (setImmediate), so that what other sockets deliver in
   * this turn joins. 'now': flush at the end of this task (a microtask), for a caller whose items
   * all come from one source, where nothing could join and the extra turn only adds latency.
   */
  collect?: 'turn' | 'now';
}

interface Pending<I, O> {
  item: I;
  resolve: (value: O) => void;
  reject: (err: Error) => void;
}

function isPromise<T>(x: T | Promise<T>): x is Promise<T> {
  return typeof (x as { then?: unknown } | null)?.then === 'function';
}

export class GroupCommit<I, O> {
  private pending: Pending<I, O>[] = [];
  private scheduled = false;
  private inFlight = false;
  private batches = 0;

  /**
   * @param commit runs one transaction for the whole batch and returns (or resolves to) one
   *   result per item, in order (an Error rejects that item alone); it throws (rejects) if
   *   nothing was committed.
   * @param mapError turns a failed commit into the error each submitter gets (a fresh one each).
   */
  constructor(
    private readonly commit: CommitFn<I, O>,
    private readonly mapError: (err: unknown) => Error,
    private readonly opts: GroupCommitOptions = {},
  ) {}

  submit(item: I): Promise<O> {
    return new Promise<O>((resolve, reject) => {
      this.pending.push({ item, resolve, reject });
      if (this.scheduled || this.inFlight) return; // the commit in flight flushes it when done
      this.scheduled = true;
      if (this.opts.collect === 'now') queueMicrotask(() => this.flush());
      else setImmediate(() => this.flush());
    });
  }

  /**
   * Commits whatever is pending now (also used by close(), so nothing waits for a tick that never
   * comes). With an asynchronous commit in flight it does nothing: that commit's end flushes.
   */
  flush(): void {
    this.scheduled = false;
    if (this.inFlight) return;
    const batch = this.pending;
    if (batch.length === 0) return;
    this.pending = [];
    let result: Array<O | Error> | Promise<Array<O | Error>>;
    try {
      result = this.run(batch);
    } catch (err) {
      this.failed(batch, err);
      return;
    }
    if (!isPromise(result)) {
      this.settle(batch, result);
      return;
    }
    this.inFlight = true;
    result
      .then((r) => this.settle(batch, r), (err: unknown) => this.failedAsync(batch, err))
      .finally(() => {
        this.inFlight = false;
        // What came in meanwhile: at once (it already waited one commit long).
        this.flush();
      })
      .catch(() => undefined); // settle and failedAsync never throw; keep the chain unhandled-free
  }

  private run(batch: readonly Pending<I, O>[]): Array<O | Error> | Promise<Array<O | Error>> {
    this.batches++;
    return this.commit(batch.map((p) => p.item));
  }

  private settle(batch: readonly Pending<I, O>[], results: Array<O | Error>): void {
    batch.forEach((p, i) => {
      const r = results[i] as O | Error;
      if (r instanceof Error) p.reject(r);
      else p.resolve(r);
    });
  }

  /** A group failed: false after rejecting all of it, or true when its items are to be committed alone. */
  private retryingAlone(batch: readonly Pending<I, O>[], err: unknown): boolean {
    if (!this.opts.retryAlone || batch.length === 1) {
      for (const p of batch) p.reject(this.mapError(err));
      return false;
    }
    this.opts.retryAlone(err, batch.length);
    return true;
  }

  /** A synchronous group failed: reject it, or commit its items one by one. */
  private failed(batch: readonly Pending<I, O>[], err: unknown): void {
    if (!this.retryingAlone(batch, err)) return;
    for (const p of batch) {
      try {
        const r = this.run([p]);
        if (isPromise(r)) throw new Error('group commit: a synchronous commit returned a promise');
        this.settle([p], r);
      } catch (e) {
        p.reject(this.mapError(e));
      }
    }
  }

  /** An asynchronous group failed: reject it, or commit its items one by one, one at a time. */
  private async failedAsync(batch: readonly Pending<I, O>[], err: unknown): Promise<void> {
    if (!this.retryingAlone(batch, err)) return;
    for (const p of batch) {
      try {
        this.settle([p], await this.run([p]));
      } catch (e) {
        p.reject(this.mapError(e));
      }
    }
  }

  /** Transactions attempted so far (the group-commit test and stats read it). */
  get commits(): number {
    return this.batches;
  }

  get waiting(): number {
    return this.pending.length;
  }
}
