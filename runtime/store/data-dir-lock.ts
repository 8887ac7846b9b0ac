// One Perch per data directory (docs/store.md, "Opening"). Two processes on one data dir both
// opened the store and served: each kept the outbox's seq counter in memory, so from the second
// one's first event on, every append of the first failed (UNIQUE constraint on outbox.seq), and
// both would upload, sweep and evict the same rows. The lock is SQLite's own file lock on a small
// file beside the store, taken exclusively and held until close: the kernel drops it when its
// process dies, however it dies, so there is never a stale lock to clean up after a crash or a
// power cut (a pid file would be: and a pid reused after a reboot would refuse a healthy start).
import Database from 'better-sqlite3';
import type { Database as Db } from 'better-sqlite3';
import { chmodSync, closeSync, mkdirSync, openSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { PerchError } from '../base/errors.js';
import { storeErrorCode } from './store-errors.js';

export const LOCK_FILE = 'perch.lock';

export interface DataDirLock {
  /** The lock file; null when none could be taken (a read-only data directory or a full disk). */
  readonly file: string | null;
  /**
   * Why there is no lock (file null): the store must then open read-only, whatever its own file
   * allows, so that an unguarded data directory is never written (two processes on one database).
   */
  readonly unlocked?: unknown;
  /** Gives the lock back (closes the file). Idempotent. */
  release(): void;
}

/**
 * Takes the data directory for this process, or throws PERCH_ERR_STORE_UNAVAILABLE when another
 * process (or another runtime in this one) holds it. A directory where nothing can be written
 * (read-only) or a full disk gets no lock: the store opens degraded there and writes nothing.
 * A lock that cannot be taken in a directory Perch can write (perch.lock owned by root and not
 * writable, a directory by that name) fails closed: PERCH_ERR_STORE_LOCK_FAILED, since the store
 * would open writable beside another Perch that takes the same path (docs/store.md, "Opening").
 */
export function lockDataDir(dir: string, retry = true): DataDirLock {
  const file = join(dir, LOCK_FILE);
  let db: Db | null = null;
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    db = new Database(file, { timeout: 0 });
    // Exclusive locking mode: the lock a write takes is kept until the connection closes.
    db.pragma('locking_mode = EXCLUSIVE');
    // No journal file: on a full disk the rewrite of the one row fits the file's page, where a
    // -journal could not be made (SQLITE_FULL, and the directory went unlocked). A lock file torn
    // by a crash mid-write is not a database and is made anew below.
    db.pragma('journal_mode = MEMORY');
    db.exec('BEGIN EXCLUSIVE');
    db.exec('CREATE TABLE IF NOT EXISTS holder (pid INTEGER NOT NULL)');
    db.exec('DELETE FROM holder');
    db.prepare('INSERT INTO holder (pid) VALUES (?)').run(process.pid);
    db.exec('COMMIT');
  } catch (err) {
    db?.close();
    const code = (err as { code?: unknown }).code;
    if (code === 'SQLITE_BUSY' || code === 'SQLITE_LOCKED') {
      throw new PerchError(
        'PERCH_ERR_STORE_UNAVAILABLE',
        `data directory ${dir} is in use by another Perch process (it holds ${file}); give each Perch its own dataDir`,
        { cause: err },
      );
    }
    // A lock file that is not a database (damaged, or something else by that name) is no one's
    // lock: made anew, once.
    if (retry && (code === 'SQLITE_NOTADB' || code === 'SQLITE_CORRUPT')) {
      rmSync(file, { force: true });
      return lockDataDir(dir, false);
    }
    // A full disk, or a directory nothing can be written to: no lock, and a store that writes nothing.
    if (storeErrorCode(err) === 'PERCH_ERR_STORE_FULL' || !canWriteIn(dir)) return { file: null, unlocked: err, release: () => undefined };
    throw new PerchError(
      'PERCH_ERR_STORE_LOCK_FAILED',
      `cannot lock ${file} (${(err as Error).message}), so another Perch could open the same data directory ${dir}: ` +
        `remove ${file} or make it a file Perch's user may write (the lock needs no cleanup), or give Perch its own dataDir`,
      { cause: err },
    );
  }
  try {
    chmodSync(file, 0o600);
  } catch {
    // Not ours to chmod (EPERM): the lock is held, which is what matters.
  }
  const held = db;
  let open = true;
  return {
    file,
    release: () => {
      if (!open) return;
      open = false;
      held.close();
    },
  };
}

/** Whether a new file can be made in `dir` (made and removed at once): what the store would need. */
function canWriteIn(dir: string, retry = true): boolean {
  const probe = join(dir, `.perch-lock-probe-${process.pid}`);
  try {
    closeSync(openSync(probe, 'wx', 0o600)); // exclusive: never opens what is there (a link)
  } catch (err) {
    if (!retry || (err as NodeJS.ErrnoException).code !== 'EEXIST') return false;
    // Left by a process killed between the two calls here (pids are reused): removed, then again.
    rmSync(probe, { force: true });
    return canWriteIn(dir, false);
  }
  rmSync(probe, { force: true });
  return true;
}
