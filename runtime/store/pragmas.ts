// Every PRAGMA the store sets, in one place (docs/design.md house style 6). Durability is chosen here.
import type { Database } from 'better-sqlite3';

export interface PragmaOptions {
  busyTimeoutMs: number;
}

/** WAL files above this are cut back after a checkpoint, so a burst does not keep its disk space. */
const JOURNAL_SIZE_LIMIT = 4 * 1024 * 1024;

/**
 * SQLite's page cache per connection, in KiB: SQLite's own default (better-sqlite3 compiles
 * in 16,000). The cache keeps every page read or written, up to this bound, as anonymous memory
 * in glibc's main heap; with 16 MB, Perch's heap grew with an outbox that was never uploaded
 * (offline, the normal case) by about the file's size until the bound, the soak's slow creep
 * (docs/reliability.md, "The soak's step"). The kernel caches the file as well, and gives those
 * pages back under pressure: a page past this bound is read from there.
 */
export const PAGE_CACHE_KIB = 2000;

/** Pragmas for a read-write connection. Throws what SQLite throws (the caller maps it). */
export function applyPragmas(db: Database, opts: PragmaOptions): void {
  // busy_timeout first: switching to WAL may have to wait for another connection's lock.
  db.pragma(`busy_timeout = ${Math.trunc(opts.busyTimeoutMs)}`);
  // WAL: readers never block the writer, and a commit is one sequential append to the -wal file.
  const mode = db.pragma('journal_mode = WAL', { simple: true });
  if (String(mode).toLowerCase() !== 'wal') throw new Error(`journal_mode is ${String(mode)}, WAL could not be set`);
  // FULL, not NORMAL: in WAL mode NORMAL fsyncs only at checkpoints, so the last commits before a
  // power cut can be lost even though their transactions returned. Perch acknowledges an emit
  // only after its commit, and an acknowledged event must survive power loss; FULL fsyncs the
  // WAL on every commit. The cost is one fsync per group commit, which group commit amortises.
  db.pragma('synchronous = FULL');
  db.pragma('foreign_keys = ON');
  db.pragma(`journal_size_limit = ${JOURNAL_SIZE_LIMIT}`);
  db.pragma(`cache_size = -${PAGE_CACHE_KIB}`);
}

/** Pragmas for a connection that only reads (degraded mode): no journal change is possible. */
export function applyReadOnlyPragmas(db: Database, opts: PragmaOptions): void {
  db.pragma(`busy_timeout = ${Math.trunc(opts.busyTimeoutMs)}`);
  db.pragma('foreign_keys = ON');
  db.pragma(`cache_size = -${PAGE_CACHE_KIB}`);
  // Any write now fails with SQLITE_READONLY, which maps to PERCH_ERR_STORE_READONLY.
  db.pragma('query_only = ON');
}

/**
 * Runs `fn` (one transaction) with no fsync at its commit, on purpose, for writes a power cut may
 * undo without harm: deleting outbox events the broker has already acknowledged. Undone, those
 * events are sent again and consumers dedup them (at-least-once delivery allows it); nothing
 * acknowledged to a producer is at risk. The next FULL commit's fsync covers these WAL frames as
 * well, so such a commit can only be lost together with the ones after it, never out of order.
 * Without this, every ack batch blocked the event loop for an fsync (milliseconds on a virtual
 * disk, tens of them on an SD card) in the middle of an upload.
 */
export function withoutCommitFsync<T>(db: Database, fn: () => T): T {
  db.pragma('synchronous = NORMAL');
  try {
    return fn();
  } finally {
    db.pragma('synchronous = FULL');
  }
}
