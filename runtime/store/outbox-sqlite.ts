// The outbox on SQLite: its accounting; the SQL it runs is in outbox-table.ts. Appends are
// group-committed (group-commit.ts). The seq counter is max(meta.outbox.last_seq, max(seq) in the
// table): an append's rows carry their seqs, so the append transaction does not also rewrite the
// meta page (one page less per fsync'd commit); every transaction that deletes events writes the
// counter to meta, so it survives even after every event was acked. Either way it is committed
// atomically with the change that needs it: a seq is never reused, and a failed commit consumes
// none. Running totals (count, bytes, oldest) are kept in memory so stats() never scans the table.
// Claims read from a cursor and acks delete runs of seqs (outbox-claims.ts), so draining a backlog
// costs per batch, not per stored event.
//
// Over the byte budget each type has its strategy (outbox-overflow.ts). Two running figures make
// that cheap: `fixedBytes`, the bytes of stored events that may never be dropped (an append fits
// iff fixedBytes plus its own bytes fit: everything else can be dropped for it), and `dropCursor`,
// below which no stored event may be dropped, so a drop does not rescan the refuse-type events at
// the front of the table every time.
import type { Database } from 'better-sqlite3';
import { randomUUID } from 'node:crypto';
import { systemClock, type Clock } from '../base/clock.js';
import { PerchError } from '../base/errors.js';
import { MAX_EVENT_PAYLOAD_DEPTH, nestedDeeperThan } from '../base/json-depth.js';
import { silentLogger, type Logger } from '../base/log.js';
import type { OutboxLimits } from './config.js';
import { OverflowPolicy, type OverflowRule } from './outbox-overflow.js';
import { GroupCommit } from './group-commit.js';
import { ClaimTracker, seqRuns, type StoredEvent } from './outbox-claims.js';
import { NOTHING_DROPPED, OutboxTable, type Dropped, type ExpiredRow } from './outbox-table.js';
import { withoutCommitFsync } from './pragmas.js';
import type { AppendResult, DropCounts, DropListener, Outbox, OutboxEvent, OutboxStats, TypeCounts } from './outbox.js';
import { toStoreError, type StoreErrorContext } from './store-errors.js';

export interface SqliteOutboxOptions {
  limits: OutboxLimits;
  clock?: Clock;
  logger?: Logger;
  /** Data directory, so an I/O error can be checked for a read-only file system. */
  dir?: string;
  /** Set when the store opened degraded: writes fail with this code. */
  degraded?: StoreErrorContext['degraded'];
}

interface Pending {
  type: string;
  json: string;
  bytes: number;
  traceparent: string | null;
}

/** W3C traceparent (version 00): what an event may carry to its upload (docs/observability.md). */
const TRACEPARENT = /^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$/;

/** Rows read per claim page (more only when in-flight rows had to be skipped). */
const CLAIM_PAGE = 1024;

export class SqliteOutbox implements Outbox {
  private readonly clock: Clock;
  private readonly logger: Logger;
  private readonly errCtx: StoreErrorContext;
  private limits: OutboxLimits;
  private readonly group: GroupCommit<Pending, AppendResult>;
  private readonly ackGroup: GroupCommit<readonly number[], number>;
  private readonly listeners = new Set<DropListener>();
  private readonly claims = new ClaimTracker();
  private readonly table: OutboxTable;
  private lastSeq: number;
  private count: number;
  private bytes: number;
  private oldestCreatedAt: number | null;
  private droppedTtl = 0;
  private droppedOverflow = 0;
  private refusedTotal = 0;
  private readonly typeCounts = new Map<string, TypeCounts>();
  private policy: OverflowPolicy;
  /** Bytes of stored events whose strategy is refuse: no drop can free them. */
  private fixedBytes: number;
  /** No stored event with seq <= this may be dropped (under the current policy). */
  private dropCursor = 0;
  private closed = false;

  constructor(private readonly db: Database, opts: SqliteOutboxOptions) {
    this.clock = opts.clock ?? systemClock;
    this.logger = opts.logger ?? silentLogger();
    this.errCtx = { dir: opts.dir, degraded: opts.degraded };
    this.limits = { ...opts.limits };
    this.table = new OutboxTable(db);
    // Once at open: the counter and the totals.
    this.lastSeq = this.table.readLastSeq();
    const totals = this.table.readTotals();
    this.count = totals.count;
    this.bytes = totals.bytes;
    this.oldestCreatedAt = this.table.readOldest();
    this.policy = new OverflowPolicy(this.limits);
    this.fixedBytes = this.readFixedBytes();
    this.group = new GroupCommit<Pending, AppendResult>((items) => this.commitAppends(items), (err) => toStoreError(err, 'outbox append', this.errCtx));
    this.ackGroup = new GroupCommit((groups) => this.commitAcks(groups), (err) => toStoreError(err, 'outbox ack', this.errCtx));
  }

  append(type: string, payload: unknown, traceparent: string | null = null): Promise<AppendResult> {
    if (this.closed) return Promise.reject(new PerchError('PERCH_ERR_STORE_UNAVAILABLE', 'outbox append: the store is closed'));
    if (typeof type !== 'string' || type.length === 0) {
      return Promise.reject(new PerchError('PERCH_ERR_INVALID_MESSAGE', 'event type must be a non-empty string'));
    }
    // A deeper payload would be a batch the fleet refuses, sent again forever (runtime/base/json-depth.ts).
    if (nestedDeeperThan(payload, MAX_EVENT_PAYLOAD_DEPTH)) {
      return Promise.reject(new PerchError('PERCH_ERR_INVALID_MESSAGE', `event payload nests objects or arrays more than ${MAX_EVENT_PAYLOAD_DEPTH} levels deep`));
    }
    let json: string;
    try {
      json = JSON.stringify(payload === undefined ? null : payload);
    } catch (err) {
      return Promise.reject(new PerchError('PERCH_ERR_INVALID_MESSAGE', `event payload is not JSON-serializable: ${(err as Error).message}`, { cause: err }));
    }
    const payloadBytes = Buffer.byteLength(json);
    if (payloadBytes > this.limits.maxEventBytes) {
      return Promise.reject(new PerchError('PERCH_ERR_EVENT_TOO_LARGE', `event payload is ${payloadBytes} bytes, the limit is ${this.limits.maxEventBytes}`));
    }
    if (traceparent !== null && (typeof traceparent !== 'string' || !TRACEPARENT.test(traceparent))) {
      return Promise.reject(new PerchError('PERCH_ERR_INVALID_MESSAGE', 'event traceparent must be a W3C traceparent (00-<32 hex>-<16 hex>-<2 hex>)'));
    }
    return this.group.submit({ type, json, bytes: payloadBytes + Buffer.byteLength(type), traceparent });
  }

  /**
   * One transaction for the whole batch; in-memory state changes only after it committed, and
   * nothing after the commit can throw (every read it needs happened inside the transaction), so
   * a committed batch is never reported as failed and its seqs are never handed out again.
   * An item that does not fit the budget even after every droppable event went is refused alone
   * (PERCH_ERR_STORE_FULL, no seq used); the others commit.
   */
  private commitAppends(items: readonly Pending[]): Array<AppendResult | PerchError> {
    const now = this.clock.wallNow();
    const max = this.limits.maxBytes;
    const results: Array<AppendResult | PerchError> = [];
    const refused: OverflowRule[] = [];
    let added = 0;
    let addedFixed = 0;
    let accepted = 0;
    const dropped = this.db.transaction((): Dropped => {
      let seq = this.lastSeq;
      for (const item of items) {
        const rule = this.policy.resolve(item.type);
        // Whatever is droppable can make room, so it fits iff the never-dropped bytes and it fit.
        if (this.bytes + added + item.bytes > max && this.fixedBytes + addedFixed + item.bytes > max) {
          refused.push(rule);
          results.push(this.refusal(item, rule));
          continue;
        }
        seq++;
        const eventId = randomUUID();
        this.table.insert(seq, eventId, item.type, item.json, now, item.bytes, item.traceparent);
        results.push({ eventId, seq });
        added += item.bytes;
        if (!rule.droppable) addedFixed += item.bytes;
        accepted++;
      }
      const excess = this.bytes + added - max;
      return excess > 0 ? this.table.dropOldest(this.policy, this.dropCursor, excess, seq) : NOTHING_DROPPED;
    })();
    const wasEmpty = this.count === 0;
    this.lastSeq += accepted;
    this.count += accepted - dropped.count;
    this.bytes += added - dropped.bytes;
    this.fixedBytes += addedFixed;
    for (const rule of refused) this.countType(rule.label).refused++;
    this.refusedTotal += refused.length;
    if (dropped.count > 0) {
      this.afterDrop(dropped);
      this.droppedOverflow += dropped.count;
      this.notify({ ttl: 0, overflow: dropped.count, bytes: dropped.bytes, byType: Object.fromEntries(dropped.byType) });
    } else if (wasEmpty && accepted > 0) {
      this.oldestCreatedAt = now;
    }
    return results;
  }

  private refusal(item: Pending, rule: OverflowRule): PerchError {
    const why = rule.droppable
      ? 'the rest of the budget holds events whose strategy is refuse, which are never dropped'
      : `its type's overflow strategy is refuse (store.outbox.overflow${rule.label === '*' ? '' : `ByType["${rule.label}"]`})`;
    return new PerchError(
      'PERCH_ERR_STORE_FULL',
      `outbox full: ${this.bytes} of ${this.limits.maxBytes} bytes used, a ${item.bytes}-byte event does not fit and ${why}; it was not stored`,
    );
  }

  /** In-memory side of a committed overflow drop (the caller adjusts count, bytes and notifies). */
  private afterDrop(dropped: Dropped): void {
    this.claims.forget(dropped.seqs);
    this.dropCursor = Math.max(this.dropCursor, dropped.cursor);
    this.oldestCreatedAt = dropped.oldest;
    for (const [label, n] of dropped.byType) this.countType(label).overflow += n;
  }

  private countType(label: string): TypeCounts {
    let c = this.typeCounts.get(label);
    if (c === undefined) {
      c = { ttl: 0, overflow: 0, refused: 0 };
      this.typeCounts.set(label, c);
    }
    return c;
  }

  /** Bytes of stored events the current policy never drops: a scan only when the policy mixes strategies. */
  private readFixedBytes(): number {
    if (this.policy.nothingDroppable) return this.bytes;
    if (this.policy.everythingDroppable) return 0;
    let fixed = 0;
    for (const [type, bytes] of this.table.readBytesByType()) {
      if (!this.policy.resolve(type).droppable) fixed += bytes;
    }
    return fixed;
  }

  claim(limit: number, maxBytes?: number): Promise<OutboxEvent[]> {
    try {
      const out: StoredEvent[] = [];
      if (limit <= 0) return Promise.resolve(out);
      let bytes = 0;
      let readUpTo = this.claims.cursor;
      let full = false;
      // Pages from the cursor; a row still in flight (only after a release moved the cursor back) is skipped.
      while (!full) {
        const want = Math.min(CLAIM_PAGE, Math.max(limit - out.length, 16));
        const rows = this.table.page(readUpTo, want);
        for (const event of rows) {
          if (!this.claims.has(event.seq)) {
            if (maxBytes !== undefined && out.length > 0 && bytes + event.bytes > maxBytes) {
              full = true;
              break;
            }
            out.push(event);
            bytes += event.bytes;
          }
          readUpTo = event.seq;
          if (out.length >= limit) {
            full = true;
            break;
          }
        }
        if (rows.length < want) break;
      }
      this.claims.claimed(
        out.map((e) => e.seq),
        readUpTo,
      );
      return Promise.resolve(out);
    } catch (err) {
      return Promise.reject(toStoreError(err, 'outbox claim', this.errCtx));
    }
  }

  readAfter(after: number, limit: number): Promise<OutboxEvent[]> {
    try {
      if (limit <= 0) return Promise.resolve([]);
      return Promise.resolve(this.table.page(after, limit));
    } catch (err) {
      return Promise.reject(toStoreError(err, 'outbox read', this.errCtx));
    }
  }

  /**
   * Acks are group-committed like appends (every ack of one tick shares one transaction), each
   * deletes its seqs as runs (one DELETE per run of consecutive seqs), and the commit is not
   * fsynced (pragmas.ts withoutCommitFsync: a delete a power cut undoes only means a duplicate).
   * An uploader acking thousands of PUBACKed events at once pays a few statements, no fsync.
   */
  ack(seqs: readonly number[]): Promise<number> {
    return this.ackGroup.submit(seqs);
  }

  /** One transaction for the acks of a tick; returns how many each ack deleted. */
  private commitAcks(groups: readonly (readonly number[])[]): number[] {
    const counts: number[] = [];
    let deleted = 0;
    let freed = 0;
    let freedFixed = 0;
    let oldest: number | null = null;
    // The types of deleted rows matter only when the policy mixes strategies (fixedBytes).
    const typedBy = !this.policy.nothingDroppable && !this.policy.everythingDroppable ? this.policy : null;
    withoutCommitFsync(this.db, () => this.db.transaction(() => {
      for (const g of groups) {
        const gone = this.table.deleteSeqs(seqRuns(g), typedBy);
        counts.push(gone.rows);
        deleted += gone.rows;
        freed += gone.bytes;
        freedFixed += gone.fixedBytes;
      }
      if (deleted > 0) this.table.writeLastSeq(this.lastSeq);
      oldest = this.table.readOldest();
    })());
    for (const g of groups) this.claims.forget(g);
    if (deleted > 0) {
      this.count -= deleted;
      this.bytes -= freed;
      this.fixedBytes -= this.policy.nothingDroppable ? freed : freedFixed;
      this.oldestCreatedAt = oldest;
    }
    return counts;
  }

  markSent(seqs: readonly number[]): void {
    this.claims.markSent(seqs);
  }

  release(seqs: readonly number[]): Promise<void> {
    this.claims.release(seqs);
    return Promise.resolve();
  }

  sweep(): Promise<DropCounts> {
    const cutoff = this.clock.wallNow() - this.limits.ttlSeconds * 1000;
    let expired: ExpiredRow[];
    let overflow: Dropped;
    let oldest: number | null;
    try {
      [expired, overflow, oldest] = this.db.transaction((): [ExpiredRow[], Dropped, number | null] => {
        const gone = this.table.deleteExpired(cutoff);
        let goneBytes = 0;
        for (const r of gone) goneBytes += r[2];
        if (gone.length > 0) this.table.writeLastSeq(this.lastSeq);
        const excess = this.bytes - goneBytes - this.limits.maxBytes;
        const over = excess > 0 ? this.table.dropOldest(this.policy, this.dropCursor, excess, this.lastSeq) : NOTHING_DROPPED;
        return [gone, over, this.table.readOldest()];
      })();
    } catch (err) {
      return Promise.reject(toStoreError(err, 'outbox sweep', this.errCtx));
    }
    let ttlBytes = 0;
    const byType = new Map(overflow.byType);
    for (const [seq, type, bytes] of expired) {
      ttlBytes += bytes;
      this.claims.forget([seq]);
      const rule = this.policy.resolve(type);
      if (!rule.droppable) this.fixedBytes -= bytes;
      this.countType(rule.label).ttl++;
      byType.set(rule.label, (byType.get(rule.label) ?? 0) + 1);
    }
    const drop: DropCounts = { ttl: expired.length, overflow: overflow.count, bytes: ttlBytes + overflow.bytes, byType: Object.fromEntries(byType) };
    if (overflow.count > 0) this.afterDrop(overflow);
    if (drop.ttl + drop.overflow > 0) {
      this.count -= drop.ttl + drop.overflow;
      this.bytes -= drop.bytes;
      this.droppedTtl += drop.ttl;
      this.droppedOverflow += drop.overflow;
      this.oldestCreatedAt = oldest;
      this.notify(drop);
    }
    return Promise.resolve(drop);
  }

  setLimits(limits: Partial<OutboxLimits>): void {
    this.limits = { ...this.limits, ...limits };
    if (limits.overflow !== undefined || limits.overflowByType !== undefined) {
      // Other strategies: which stored events may be dropped changed, so count and scan afresh.
      this.policy = new OverflowPolicy(this.limits);
      this.fixedBytes = this.readFixedBytes();
      this.dropCursor = 0;
    }
  }

  stats(): OutboxStats {
    return {
      count: this.count,
      bytes: this.bytes,
      oldestAgeMs: this.oldestCreatedAt === null ? 0 : Math.max(0, this.clock.wallNow() - this.oldestCreatedAt),
      inFlight: this.claims.size,
      sent: this.claims.sent,
      lastSeq: this.lastSeq,
      dropped: { ttl: this.droppedTtl, overflow: this.droppedOverflow },
      refused: this.refusedTotal,
      byType: Object.fromEntries([...this.typeCounts].map(([label, c]) => [label, { ...c }])),
      commits: this.group.commits,
    };
  }

  onDrop(listener: DropListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  close(): Promise<void> {
    this.group.flush();
    this.ackGroup.flush();
    this.closed = true;
    return Promise.resolve();
  }

  /** Listeners run after the commit; one that throws is logged and does not stop the others. */
  private notify(drop: DropCounts): void {
    for (const l of this.listeners) {
      try {
        l(drop);
      } catch (err) {
        this.logger.error({ err }, 'outbox drop listener failed');
      }
    }
  }
}
