// The SQLite implementation built from its own parts on a database this helper opens, for the
// tests of what only SQLite has: the seq counter in `meta`, pragmas, write-behind, and write
// failures SQLite itself makes (`PRAGMA query_only`, `max_page_count`). PerchStore hands out
// interfaces only (runtime/store/store.ts), so these tests do what store.ts does, with the same
// public constructors, and keep the database handle to themselves.
import type { Database } from 'better-sqlite3';
import type { Clock } from '../../../runtime/base/clock.js';
import { defaultStoreConfig, type OutboxLimits } from '../../../runtime/store/config.js';
import { openDatabase } from '../../../runtime/store/database.js';
import { SqliteOutbox } from '../../../runtime/store/outbox-sqlite.js';
import type { CacheLimits } from '../../../runtime/store/result-cache.js';
import { SqliteResultCache } from '../../../runtime/store/result-cache-sqlite.js';
import { SqliteStateStore } from '../../../runtime/store/state-store-sqlite.js';

export interface SqliteParts {
  db: Database;
  outbox: SqliteOutbox;
  cache: SqliteResultCache;
  state: SqliteStateStore;
  /** Flushes and closes, like PerchStore.close(). */
  close(): Promise<void>;
}

export function openSqliteParts(dataDir: string, opts: { clock?: Clock; outboxLimits?: Partial<OutboxLimits>; cacheLimits?: Partial<CacheLimits> } = {}): SqliteParts {
  const config = defaultStoreConfig();
  const clock = opts.clock;
  const opened = openDatabase({ dataDir, fileName: config.fileName, ...(clock ? { clock } : {}) });
  const { db, dir } = opened;
  const outbox = new SqliteOutbox(db, { limits: { ...config.outbox, ...opts.outboxLimits }, dir, ...(clock ? { clock } : {}) });
  const cache = new SqliteResultCache(db, { limits: { ...config.cache, ...opts.cacheLimits }, dir, ...(clock ? { clock } : {}) });
  const state = new SqliteStateStore(db, { dir, ...(clock ? { clock } : {}) });
  return {
    db, outbox, cache, state,
    close: async () => {
      cache.close();
      await outbox.close();
      db.close();
    },
  };
}
