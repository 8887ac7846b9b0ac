// Between a chunk arriving and it counting as staged: written in place (ChunkStore.write), then
// made durable by a group commit (ChunkStore.commit). One commit runs at a time and takes every
// chunk written since the last one, so the batch size follows the rate: a slow or capped
// download commits nearly every chunk as it lands, a fast one commits many per fsync pair. A
// chunk is in `have` (and survives a kill) only once its commit returned.
import type { ChunkStore } from './chunk-store.js';

export interface StagerHooks {
  /** Chunks became durable; `have` holds them now. */
  staged(count: number): void;
  /** A write or a commit failed: the download cannot finish. */
  failed(err: Error): void;
}

export class ChunkStager {
  private readonly writing = new Set<number>();
  private written = new Set<number>();
  /** The batch being committed: in no other set until its commit returns. */
  private committingNow: ReadonlySet<number> = new Set();
  private committing = false;
  private readonly pending = new Set<Promise<void>>();
  private broken = false;

  constructor(
    private readonly store: ChunkStore,
    /** Staged durably; seeded with what an earlier run staged. */
    readonly have: Set<number>,
    private readonly hooks: StagerHooks,
  ) {}

  /** Staged, being written, or written and waiting for a commit: not to be asked for again. */
  holds(index: number): boolean {
    return this.have.has(index) || this.writing.has(index) || this.written.has(index) || this.committingNow.has(index);
  }

  /** Chunks received and not yet durable. */
  get unstaged(): number {
    return this.writing.size + this.written.size + this.committingNow.size;
  }

  add(index: number, bytes: Buffer): void {
    this.writing.add(index);
    this.track(
      this.store.write(index, bytes).then(
        () => {
          this.writing.delete(index);
          this.written.add(index);
          this.commitSoon();
        },
        (err: unknown) => this.fail(new Error(`chunk ${index} could not be written: ${(err as Error).message}`, { cause: err })),
      ),
    );
  }

  /** Waits for every write and commit under way, and commits what they wrote. */
  async drain(): Promise<void> {
    while (this.pending.size > 0) await Promise.all([...this.pending]);
  }

  private commitSoon(): void {
    if (this.committing || this.broken || this.written.size === 0) return;
    this.committing = true;
    const batch = [...this.written];
    this.committingNow = this.written;
    this.written = new Set();
    this.track(
      this.store.commit(batch).then(
        () => {
          this.committing = false;
          for (const i of batch) this.have.add(i);
          this.committingNow = new Set();
          this.hooks.staged(batch.length);
          this.commitSoon();
        },
        (err: unknown) => {
          this.committing = false;
          this.committingNow = new Set();
          this.fail(new Error(`chunks could not be made durable: ${(err as Error).message}`, { cause: err }));
        },
      ),
    );
  }

  private fail(err: Error): void {
    this.broken = true;
    this.hooks.failed(err);
  }

  private track(p: Promise<void>): void {
    this.pending.add(p);
    void p.finally(() => this.pending.delete(p));
  }
}
