// Composition root of the store: one database, the three stores on it, one close().
// Open it before the modules that emit events and serve the cache; close it after them (their
// last events and cache writes are flushed by close()).
import type { Database } from 'better-sqlite3';
import { systemClock, type Clock } from '../base/clock.js';
import { silentLogger, type Logger } from '../base/log.js';
import { checkpointWal, type CheckpointResult } from './checkpoint.js';
import { defaultStoreConfig, type StoreConfig } from './config.js';
import { openDatabase, type StoreIncident } from './database.js';
import { SqliteOutbox } from './outbox-sqlite.js';
import { SqliteResultCache } from './result-cache-sqlite.js';
import { SqliteStateStore } from './state-store-sqlite.js';

export interface OpenStoreOptions {
  dataDir: string;
  config?: StoreConfig;
  clock?: Clock;
  logger?: Logger;
  /** Open read-only on purpose (inspection tools); writes then fail with PERCH_ERR_STORE_READONLY. */
  readOnly?: boolean;
}

export interface PerchStore {
  readonly db: Database;
  readonly file: string;
  /** False in degraded mode (read-only or full disk at start-up): reads work, writes fail with a code. */
  readonly writable: boolean;
  /** What happened at open (corrupt file moved aside, read-only, full), to be recorded as events. */
  readonly incidents: readonly StoreIncident[];
  readonly outbox: SqliteOutbox;
  readonly cache: SqliteResultCache;
  readonly state: SqliteStateStore;
  /** PRAGMA wal_checkpoint(TRUNCATE); null when read-only. */
  checkpoint(): CheckpointResult | null;
  /** Flushes the cache's and the outbox's pending writes, then closes the database. Idempotent. */
  close(): Promise<void>;
}

export function openStore(opts: OpenStoreOptions): PerchStore {
  const config = opts.config ?? defaultStoreConfig();
  const clock = opts.clock ?? systemClock;
  const logger = opts.logger ?? silentLogger();
  const opened = openDatabase({
    dataDir: opts.dataDir,
    fileName: config.fileName,
    busyTimeoutMs: config.busyTimeoutMs,
    checkOnOpen: config.checkOnOpen,
    readOnly: opts.readOnly ?? false,
    clock,
    logger,
  });
  const { db, dir, degraded } = opened;
  const outbox = new SqliteOutbox(db, { limits: config.outbox, clock, logger, dir, degraded });
  const cache = new SqliteResultCache(db, { limits: config.cache, clock, logger, dir, degraded, writable: opened.writable });
  const state = new SqliteStateStore(db, { clock, dir, degraded });
  let closing: Promise<void> | null = null;
  return {
    db,
    file: opened.file,
    writable: opened.writable,
    incidents: opened.incidents,
    outbox,
    cache,
    state,
    checkpoint: () => (opened.writable ? checkpointWal(db, dir) : null),
    close: () => {
      closing ??= (async () => {
        cache.close();
        await outbox.close();
        db.close();
      })();
      return closing;
    },
  };
}
