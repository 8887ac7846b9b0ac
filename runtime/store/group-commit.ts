// Group commit: every submit made in the same tick of the event loop goes into one transaction,
// flushed on setImmediate (after the I/O callbacks of this loop turn, so frames read together
// from many WebSocket clients share one fsync). Each submitter's promise settles only after
// that transaction committed, or rejects if it failed; nothing is half-acknowledged.

/** One result per item: a value, or an Error for an item the commit refused (the others still commit). */
export type CommitFn<I, O> = (items: readonly I[]) => Array<O | Error>;

interface Pending<I, O> {
  item: I;
  resolve: (value: O) => void;
  reject: (err: Error) => void;
}

export class GroupCommit<I, O> {
  private pending: Pending<I, O>[] = [];
  private scheduled = false;
  private batches = 0;

  /**
   * @param commit runs one transaction for the whole batch and returns one result per item, in
   *   order (an Error rejects that item alone); it throws if nothing was committed.
   * @param mapError turns a failed commit into the error each submitter gets (a fresh one each).
   */
  constructor(
    private readonly commit: CommitFn<I, O>,
    private readonly mapError: (err: unknown) => Error,
  ) {}

  submit(item: I): Promise<O> {
    return new Promise<O>((resolve, reject) => {
      this.pending.push({ item, resolve, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  /** Commits whatever is pending now (also used by close(), so nothing waits for a tick that never comes). */
  flush(): void {
    this.scheduled = false;
    const batch = this.pending;
    if (batch.length === 0) return;
    this.pending = [];
    this.batches++;
    let results: Array<O | Error>;
    try {
      results = this.commit(batch.map((p) => p.item));
    } catch (err) {
      for (const p of batch) p.reject(this.mapError(err));
      return;
    }
    batch.forEach((p, i) => {
      const r = results[i] as O | Error;
      if (r instanceof Error) p.reject(r);
      else p.resolve(r);
    });
  }

  /** Transactions attempted so far (the group-commit test and stats read it). */
  get commits(): number {
    return this.batches;
  }

  get waiting(): number {
    return this.pending.length;
  }
}
