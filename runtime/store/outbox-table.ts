// The outbox table's statements and row-level operations: what SQL the outbox runs, kept apart
// from the accounting in outbox-sqlite.ts (seq counter, running totals, overflow strategies).
// Every statement is prepared once (docs/design.md house style 6); raw mode where rows are many.
import type { Database, Statement } from 'better-sqlite3';
import type { OverflowPolicy } from './outbox-overflow.js';
import { seqRuns, StoredEvent } from './outbox-claims.js';

/** A page row (raw mode): seq, event_id, type, payload, created_at, bytes, traceparent. */
type Row = [number, string, string, string, number, number, string | null];

/** A ttl-expired row (raw mode): seq, type, bytes. */
export type ExpiredRow = [number, string, number];

/** What one overflow drop deleted, read inside its transaction. */
export interface Dropped {
  count: number;
  bytes: number;
  /** The seqs deleted, ascending. */
  seqs: number[];
  /** Their count by type label. */
  byType: Map<string, number>;
  /** Where the next drop scan starts (the outbox's dropCursor). */
  cursor: number;
  /** created_at of the oldest event left, read in the same transaction. */
  oldest: number | null;
}

export const NOTHING_DROPPED: Dropped = { count: 0, bytes: 0, seqs: [], byType: new Map(), cursor: 0, oldest: null };

export class OutboxTable {
  private readonly st: Record<
    | 'insert' | 'setLastSeq' | 'lastSeq' | 'maxSeq' | 'totals' | 'totalsByType' | 'oldest' | 'scanFrom' | 'deleteRun' | 'page'
    | 'deleteRange' | 'deleteRangeTyped' | 'deleteExpired',
    Statement
  >;

  constructor(readonly db: Database) {
    this.st = {
      insert: db.prepare('INSERT INTO outbox (seq, event_id, type, payload, created_at, bytes, traceparent) VALUES (?, ?, ?, ?, ?, ?, ?)'),
      setLastSeq: db.prepare("UPDATE meta SET value = ? WHERE key = 'outbox.last_seq'"),
      lastSeq: db.prepare("SELECT value FROM meta WHERE key = 'outbox.last_seq'").pluck(),
      maxSeq: db.prepare('SELECT coalesce(max(seq), 0) FROM outbox').pluck(),
      totals: db.prepare('SELECT count(*) AS count, coalesce(sum(bytes), 0) AS bytes FROM outbox'),
      totalsByType: db.prepare('SELECT type, sum(bytes) FROM outbox GROUP BY type').raw(),
      oldest: db.prepare('SELECT created_at FROM outbox ORDER BY seq LIMIT 1').pluck(),
      scanFrom: db.prepare('SELECT seq, type, bytes FROM outbox WHERE seq > ? ORDER BY seq').raw(),
      deleteRun: db.prepare('DELETE FROM outbox WHERE seq BETWEEN ? AND ?'),
      page: db.prepare('SELECT seq, event_id, type, payload, created_at, bytes, traceparent FROM outbox WHERE seq > ? ORDER BY seq LIMIT ?').raw(),
      deleteRange: db.prepare('DELETE FROM outbox WHERE seq BETWEEN ? AND ? RETURNING bytes').pluck(),
      deleteRangeTyped: db.prepare('DELETE FROM outbox WHERE seq BETWEEN ? AND ? RETURNING type, bytes').raw(),
      deleteExpired: db.prepare('DELETE FROM outbox WHERE created_at < ? RETURNING seq, type, bytes').raw(),
    };
  }

  /** The seq counter at open: the larger of meta and the table, in case meta lagged. */
  readLastSeq(): number {
    return Math.max(Number(this.st.lastSeq.get() ?? 0), Number(this.st.maxSeq.get()));
  }

  /** Written by every transaction that deletes events, so the counter survives an empty table. */
  writeLastSeq(seq: number): void {
    this.st.setLastSeq.run(seq);
  }

  readTotals(): { count: number; bytes: number } {
    return this.st.totals.get() as { count: number; bytes: number };
  }

  /** Bytes stored per type (one scan; only when the overflow policy mixes strategies). */
  readBytesByType(): Array<[string, number]> {
    return this.st.totalsByType.all() as Array<[string, number]>;
  }

  readOldest(): number | null {
    const v = this.st.oldest.get() as number | undefined;
    return v ?? null;
  }

  insert(seq: number, eventId: string, type: string, json: string, createdAt: number, bytes: number, traceparent: string | null): void {
    this.st.insert.run(seq, eventId, type, json, createdAt, bytes, traceparent);
  }

  /** Up to `limit` events with seq > after, in seq order. */
  page(after: number, limit: number): StoredEvent[] {
    const rows = this.st.page.all(after, limit) as Row[];
    return rows.map(([seq, eventId, type, payload, createdAt, bytes, traceparent]) => new StoredEvent(seq, eventId, type, payload, createdAt, bytes, traceparent));
  }

  /**
   * Deletes runs of seqs (one DELETE each). Returns the rows and bytes deleted, and the bytes of
   * those `policy` never drops; with no policy (it does not mix strategies) types are not read.
   */
  deleteSeqs(runs: readonly [number, number][], policy: OverflowPolicy | null): { rows: number; bytes: number; fixedBytes: number } {
    let rows = 0;
    let bytes = 0;
    let fixedBytes = 0;
    for (const [from, to] of runs) {
      if (policy !== null) {
        const gone = this.st.deleteRangeTyped.all(from, to) as Array<[string, number]>;
        rows += gone.length;
        for (const [type, b] of gone) {
          bytes += b;
          if (!policy.resolve(type).droppable) fixedBytes += b;
        }
      } else {
        const gone = this.st.deleteRange.all(from, to) as number[];
        rows += gone.length;
        for (const b of gone) bytes += b;
      }
    }
    return { rows, bytes, fixedBytes };
  }

  deleteExpired(cutoff: number): ExpiredRow[] {
    return this.st.deleteExpired.all(cutoff) as ExpiredRow[];
  }

  /**
   * drop-oldest: deletes the oldest droppable events (seq > from) until `excess` bytes are freed
   * or none is left, and writes the counter. Runs inside the caller's transaction.
   */
  dropOldest(policy: OverflowPolicy, from: number, excess: number, lastSeq: number): Dropped {
    if (policy.nothingDroppable) return NOTHING_DROPPED;
    const seqs: number[] = [];
    const byType = new Map<string, number>();
    let bytes = 0;
    let cursor = from;
    for (const [seq, type, rowBytes] of this.st.scanFrom.iterate(from) as IterableIterator<[number, string, number]>) {
      cursor = seq;
      const rule = policy.resolve(type);
      if (!rule.droppable) continue;
      seqs.push(seq);
      bytes += rowBytes;
      byType.set(rule.label, (byType.get(rule.label) ?? 0) + 1);
      if (bytes >= excess) break; // leaving the loop closes the iterator before the DELETE runs
    }
    if (seqs.length > 0) {
      for (const [lo, hi] of seqRuns(seqs)) this.st.deleteRun.run(lo, hi);
      this.st.setLastSeq.run(lastSeq);
    }
    return { count: seqs.length, bytes, seqs, byType, cursor, oldest: this.readOldest() };
  }
}
