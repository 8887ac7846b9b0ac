// Composition root of the store: one database, the three stores on it, one close().
// Open it before the modules that emit events and serve the cache; close it after them (their
// last events and cache writes are flushed by close()).
// What it hands out are the interfaces (outbox.ts, result-cache.ts, state-store.ts), never the
// SQLite classes or the database: every user, tests included, goes through what an
// implementation promises (test/store/abstract/ checks it), and the maintenance that needs SQLite
// itself (checkpoint, integrity check) is a method here.
import { systemClock, type Clock } from '../base/clock.js';
import { silentLogger, type Logger } from '../base/log.js';
import { checkpointWal, integrityCheck, type CheckpointResult } from './checkpoint.js';
import { defaultStoreConfig, type StoreConfig } from './config.js';
import { openDatabase, type StoreIncident } from './database.js';
import { SqliteOutbox } from './outbox-sqlite.js';
import type { Outbox } from './outbox.js';
import { SqliteResultCache } from './result-cache-sqlite.js';
import type { ResultCache } from './result-cache.js';
import { SqliteStateStore } from './state-store-sqlite.js';
import type { StateStore } from './state-store.js';

export interface OpenStoreOptions {
  dataDir: string;
  config?: StoreConfig;
  clock?: Clock;
  logger?: Logger;
  /** Open read-only on purpose (inspection tools); writes then fail with PERCH_ERR_STORE_READONLY. */
  readOnly?: boolean;
  /** Set when the data directory's lock could not be taken (data-dir-lock.ts): opens degraded, read-only, for this reason. */
  unlocked?: unknown;
}

export interface PerchStore {
  readonly file: string;
  /** False in degraded mode (read-only or full disk at start-up): reads work, writes fail with a code. */
  readonly writable: boolean;
  /** What happened at open (corrupt file moved aside, read-only, full), to be recorded as events. */
  readonly incidents: readonly StoreIncident[];
  readonly outbox: Outbox;
  readonly cache: ResultCache;
  readonly state: StateStore;
  /** PRAGMA wal_checkpoint(TRUNCATE); null when read-only. */
  checkpoint(): CheckpointResult | null;
  /**
   * PRAGMA integrity_check: 'ok', or what is damaged (one line per problem). It reads the whole
   * file (seconds on a large store on an SD card): for tools and for checks after a fault, not
   * for a request path. Throws PERCH_ERR_STORE_* when the database cannot be read.
   */
  integrityCheck(): string;
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
    salvageTimeoutMs: config.salvageTimeoutMs,
    salvageMaxPayloadBytes: Math.max(config.outbox.maxEventBytes, 16 * 1024 * 1024),
    readOnly: opts.readOnly ?? false,
    ...(opts.unlocked !== undefined ? { unlocked: opts.unlocked } : {}),
    clock,
    logger,
  });
  const { db, dir, degraded } = opened;
  const outbox = new SqliteOutbox(db, { limits: config.outbox, clock, logger, dir, degraded });
  const cache = new SqliteResultCache(db, { limits: config.cache, clock, logger, dir, degraded, writable: opened.writable });
  const state = new SqliteStateStore(db, { clock, dir, degraded });
  let closing: Promise<void> | null = null;
  return {
    file: opened.file,
    writable: opened.writable,
    incidents: opened.incidents,
    outbox,
    cache,
    state,
    checkpoint: () => (opened.writable ? checkpointWal(db, dir) : null),
    integrityCheck: () => integrityCheck(db, dir),
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
