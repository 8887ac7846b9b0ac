// Opens the one SQLite file of the store. Three outcomes, never a crash of the runtime:
// - read-write (the normal case), after moving a corrupt file aside if there was one;
// - read-only (degraded) when the data directory cannot be written or the disk is full at
//   start-up: reads still answer (state, cache, backlog stats) and every write fails with a
//   clear PERCH_ERR_STORE_* code, so inference keeps serving;
// - a thrown PerchError for anything else (locked by another process, schema from a newer Perch).
// Incidents are returned, not only logged, so the runtime can record them as events once the
// outbox is up.
import Database from 'better-sqlite3';
import type { Database as Db } from 'better-sqlite3';
import { closeSync, existsSync, openSync, readFileSync, readSync } from 'node:fs';
import { join } from 'node:path';
import { systemClock, type Clock } from '../base/clock.js';
import type { ErrorCode } from '../base/errors.js';
import { PerchError } from '../base/errors.js';
import { silentLogger, type Logger } from '../base/log.js';
import { migrate, schemaVersion, SCHEMA_VERSION } from './migrations.js';
import { applyPragmas, applyReadOnlyPragmas } from './pragmas.js';
import { finishSalvage, moveAside, placeSalvaged, removeQuietly, salvageBeforeMove, salvagedFile } from './corrupt-file.js';
import { ensureFile } from './data-file.js';
import { isCorruptionError, storeErrorCode, toStoreError } from './store-errors.js';

export interface StoreIncident {
  kind: 'corrupt' | 'read-only' | 'full';
  code: Extract<ErrorCode, 'PERCH_ERR_STORE_CORRUPT' | 'PERCH_ERR_STORE_READONLY' | 'PERCH_ERR_STORE_FULL'>;
  message: string;
  file: string;
  /** Where a corrupt file was moved (kind 'corrupt'). */
  movedTo?: string;
  /** Kind 'corrupt': outbox events copied from it into the fresh file (salvage.ts). */
  salvaged?: number;
  /** Kind 'corrupt': events its index lists that could not be read (a lower bound unless lostExact). */
  lost?: number;
  lostExact?: boolean;
  /** Kind 'corrupt': device state documents copied. */
  stateKeys?: number;
  /** Kind 'corrupt': the fresh file's seq counter, and whether it was read or estimated past every seq the file can have used. */
  lastSeq?: number;
  counter?: 'read' | 'estimated';
  /** Kind 'corrupt': the salvage stopped at store.salvageTimeoutMs. */
  timedOut?: boolean;
  /** Wall-clock epoch ms. */
  at: number;
}

export interface OpenDatabaseOptions {
  dataDir: string;
  fileName: string;
  busyTimeoutMs?: number;
  checkOnOpen?: 'quick' | 'none';
  /** Budget to salvage a corrupt file's events before it is moved aside; 0 moves it aside unread. */
  salvageTimeoutMs?: number;
  /** Largest event payload a salvage copies (bytes). */
  salvageMaxPayloadBytes?: number;
  /** Open read-only on purpose (tools, tests); no incident is reported for it. */
  readOnly?: boolean;
  /** Why the data directory is not locked (data-dir-lock.ts): the store opens degraded, never written unguarded. */
  unlocked?: unknown;
  clock?: Clock;
  logger?: Logger;
}

export interface OpenedDatabase {
  db: Db;
  file: string;
  dir: string;
  writable: boolean;
  /** What went wrong while opening and how it was handled, oldest first. */
  incidents: StoreIncident[];
  /** user_version found before migrating (0 for a new file). */
  schemaVersionFound: number;
  /** Why the store is read-only when it opened degraded (not when readOnly was asked for). */
  degraded?: 'PERCH_ERR_STORE_READONLY' | 'PERCH_ERR_STORE_FULL';
}

export function openDatabase(opts: OpenDatabaseOptions): OpenedDatabase {
  const clock = opts.clock ?? systemClock;
  const logger = opts.logger ?? silentLogger();
  const busyTimeoutMs = opts.busyTimeoutMs ?? 5000;
  const dir = opts.dataDir;
  const file = join(dir, opts.fileName);
  const incidents: StoreIncident[] = [];

  if (opts.readOnly) {
    const ro = openReadOnly(file, busyTimeoutMs);
    return { db: ro.db, file, dir, writable: false, incidents, schemaVersionFound: ro.schemaVersionFound };
  }

  const degrade = (err: unknown): OpenedDatabase => {
    const code = storeErrorCode(err, dir);
    const ro = openReadOnly(file, busyTimeoutMs);
    const message = `${err instanceof Error ? err.message : String(err)}; serving reads from ${ro.source}, every write fails`;
    const degraded = code === 'PERCH_ERR_STORE_FULL' ? code : 'PERCH_ERR_STORE_READONLY';
    const kind = degraded === 'PERCH_ERR_STORE_FULL' ? 'full' : 'read-only';
    incidents.push({ kind, code: degraded, message, file, at: clock.wallNow() });
    // One line an operator can act on; no stack: this is the machine's state, not a bug.
    const reason = err instanceof Error ? err.message : String(err);
    logger.error(
      { code: degraded, dir, file, source: ro.source, reason },
      `data directory ${dir} cannot be written (${reason}): serving without a writable store, so events, cached results and state are not kept; give Perch a writable data directory (dataDir, PERCH_DATA_DIR)`,
    );
    return { db: ro.db, file, dir, writable: false, incidents, schemaVersionFound: ro.schemaVersionFound, degraded };
  };
  const canDegrade = (err: unknown): boolean => {
    const code = storeErrorCode(err, dir);
    return code === 'PERCH_ERR_STORE_READONLY' || code === 'PERCH_ERR_STORE_FULL';
  };

  if (opts.unlocked !== undefined) return degrade(opts.unlocked);
  try {
    finishSalvage(file);
  } catch (err) {
    if (canDegrade(err)) return degrade(err);
    throw toStoreError(err, `finish the salvage of ${file}`, { dir });
  }
  // Set when a corrupt file was moved aside unread: the fresh file's counter must still pass its seqs.
  let unreadCounter: number | undefined;
  for (let attempt = 0; ; attempt++) {
    try {
      ensureFile(dir, file);
      const { db, found } = openWritable(file, busyTimeoutMs, opts.checkOnOpen ?? 'quick');
      if (unreadCounter !== undefined) {
        try {
          db.prepare("UPDATE meta SET value = max(value, ?) WHERE key = 'outbox.last_seq'").run(unreadCounter);
        } catch (err) {
          db.close();
          throw err;
        }
      }
      return { db, file, dir, writable: true, incidents, schemaVersionFound: found };
    } catch (err) {
      if (isCorruptionError(err) && attempt === 0) {
        // Read what can be read into a fresh file first, while the damaged one is still in place:
        // a crash during the salvage starts it again at the next start (docs/store.md).
        const salvage = salvageBeforeMove(file, {
          dataDir: dir,
          timeoutMs: opts.salvageTimeoutMs ?? 30_000,
          maxPayloadBytes: opts.salvageMaxPayloadBytes ?? 16 * 1024 * 1024,
          clock,
          logger,
        });
        let movedTo: string;
        try {
          movedTo = moveAside(file, clock.wallNow());
        } catch (moveErr) {
          removeQuietly(salvagedFile(file));
          // Corrupt and on a read-only disk: nothing can be moved; serve what can be read.
          if (canDegrade(moveErr)) return degrade(moveErr);
          throw toStoreError(moveErr, `move corrupt ${file} aside`, { dir });
        }
        if (salvage) placeSalvaged(file, dir);
        const what = salvage
          ? `${salvage.salvaged} outbox events (${salvage.lost}${salvage.lostExact ? '' : ' or more'} lost) and ${salvage.stateKeys} state documents were salvaged into a fresh database`
          : 'a fresh database was created';
        const message = `${err instanceof Error ? err.message : String(err)}; moved to ${movedTo}, ${what}`;
        // Unread, nothing says which seqs the fleet holds: the clock in ms is past any device's count (salvage.ts).
        if (!salvage) unreadCounter = Math.trunc(clock.wallNow());
        const counts = salvage
          ? { salvaged: salvage.salvaged, lost: salvage.lost, lostExact: salvage.lostExact, stateKeys: salvage.stateKeys, lastSeq: salvage.lastSeq, counter: salvage.counter, timedOut: salvage.timedOut }
          : { salvaged: 0, lost: 0, lostExact: false, lastSeq: unreadCounter, counter: 'estimated' as const };
        incidents.push({ kind: 'corrupt', code: 'PERCH_ERR_STORE_CORRUPT', message, file, movedTo, ...counts, at: clock.wallNow() });
        logger.error({ err, file, movedTo, ...counts, unreadable: salvage?.unreadable, salvageMs: salvage?.ms }, `corrupt database moved aside; ${what}`);
        continue;
      }
      if (canDegrade(err)) return degrade(err);
      throw toStoreError(err, `open ${file}`, { dir });
    }
  }
}

const SQLITE_MAGIC = Buffer.from('SQLite format 3\0', 'latin1');

/**
 * Checked before SQLite opens the file: on a file that is not a database SQLite fails only after
 * it has looked at (and on close may delete) the -wal, which we want to keep next to the copy.
 */
function assertHeader(file: string): void {
  const fd = openSync(file, 'r');
  try {
    const head = Buffer.alloc(SQLITE_MAGIC.length);
    const n = readSync(fd, head, 0, head.length, 0);
    if (n === 0) return; // empty: SQLite makes a new database of it
    if (n < head.length || !head.equals(SQLITE_MAGIC)) {
      throw Object.assign(new Error('file is not a database (no SQLite header)'), { code: 'SQLITE_NOTADB' });
    }
  } finally {
    closeSync(fd);
  }
}

function openWritable(file: string, busyTimeoutMs: number, check: 'quick' | 'none'): { db: Db; found: number } {
  assertHeader(file);
  const db = new Database(file);
  try {
    applyPragmas(db, { busyTimeoutMs }); // reads the header: SQLITE_NOTADB for a file that is not a database
    if (check === 'quick') {
      const rows = db.pragma('quick_check(1)') as Array<{ quick_check: string }>;
      const result = rows[0]?.quick_check ?? 'no result';
      if (result !== 'ok') throw Object.assign(new Error(`quick_check: ${result}`), { code: 'SQLITE_CORRUPT' });
    }
    const found = migrate(db);
    return { db, found };
  } catch (err) {
    closeUntouched(db, file, err);
    throw err;
  }
}

/**
 * Closes a connection to a damaged file without checkpointing its -wal into it (the last
 * connection to a WAL database checkpoints at close): a read-only connection held open across the
 * close makes it not the last, and a read-only one never checkpoints. The file and its -wal are
 * kept as they were found, for the salvage and for inspection.
 */
function closeUntouched(db: Db, file: string, err: unknown): void {
  let guard: Db | undefined;
  if (isCorruptionError(err)) {
    try {
      guard = new Database(file, { readonly: true, fileMustExist: true });
      guard.pragma('schema_version'); // takes its shared lock on the file
    } catch {
      // not even a read-only view: nothing in it a checkpoint could change either
    }
  }
  db.close();
  try {
    guard?.close();
  } catch {
    // nothing was written through it
  }
}

interface ReadOnlyDb {
  db: Db;
  source: string;
  schemaVersionFound: number;
}

/**
 * Best read-only view available: the file itself; else an in-memory snapshot of it (a WAL
 * database needs its -shm, which cannot be created on a read-only mount after a clean shutdown
 * removed it; the snapshot misses what is still in the -wal, which stays safe on disk); else an
 * empty store with the current schema. Each is query_only, so writes fail with SQLITE_READONLY.
 */
function openReadOnly(file: string, busyTimeoutMs: number): ReadOnlyDb {
  const attempt = (make: () => Db): Db | undefined => {
    let db: Db | undefined;
    try {
      db = make();
      applyReadOnlyPragmas(db, { busyTimeoutMs });
      const v = schemaVersion(db);
      if (v > SCHEMA_VERSION) {
        throw new PerchError('PERCH_ERR_STORE_UNAVAILABLE', `database schema version ${v} is newer than this runtime's ${SCHEMA_VERSION}`);
      }
      if (v === SCHEMA_VERSION) return db;
      db.close(); // an older schema cannot be migrated without writing
      return undefined;
    } catch (err) {
      db?.close();
      if (err instanceof PerchError) throw err;
      return undefined;
    }
  };
  if (existsSync(file)) {
    const direct = attempt(() => new Database(file, { readonly: true, fileMustExist: true }));
    if (direct) return { db: direct, source: 'the database file', schemaVersionFound: SCHEMA_VERSION };
    const snapshot = attempt(() => {
      const image = readFileSync(file);
      // Header bytes 18-19 say WAL (2); an in-memory database cannot do WAL, so the copy says legacy (1).
      if (image.length >= 100 && image[18] === 2 && image[19] === 2) {
        image[18] = 1;
        image[19] = 1;
      }
      return new Database(image);
    });
    if (snapshot) return { db: snapshot, source: 'an in-memory snapshot of the database file (WAL not applied)', schemaVersionFound: SCHEMA_VERSION };
  }
  const db = new Database(':memory:');
  const found = migrate(db);
  applyReadOnlyPragmas(db, { busyTimeoutMs });
  return { db, source: 'an empty in-memory store', schemaVersionFound: found };
}
