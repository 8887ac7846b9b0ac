// One Perch per data directory (docs/store.md, "Opening"). Two processes on one data dir both
// opened the store and served: each kept the outbox's seq counter in memory, so from the second
// one's first event on, every append of the first failed (UNIQUE constraint on outbox.seq), and
// both would upload, sweep and evict the same rows. The lock is SQLite's own file lock on a small
// file beside the store, taken exclusively and held until close: the kernel drops it when its
// process dies, however it dies, so there is never a stale lock to clean up after a crash or a
// power cut (a pid file would be: and a pid reused after a reboot would refuse a healthy start).
import Database from 'better-sqlite3';
import type { Database as Db } from 'better-sqlite3';
import { chmodSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { PerchError } from '../base/errors.js';

export const LOCK_FILE = 'perch.lock';

export interface DataDirLock {
  /** The lock file; null when none could be taken (a read-only data directory: nothing to guard). */
  readonly file: string | null;
  /** Gives the lock back (closes the file). Idempotent. */
  release(): void;
}

/**
 * Takes the data directory for this process, or throws PERCH_ERR_STORE_UNAVAILABLE when another
 * process (or another runtime in this one) holds it. A directory where the lock file cannot be
 * made (read-only, full) gets no lock: the store opens degraded there and writes nothing.
 */
export function lockDataDir(dir: string, retry = true): DataDirLock {
  const file = join(dir, LOCK_FILE);
  let db: Db | null = null;
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    db = new Database(file, { timeout: 0 });
    // Exclusive locking mode: the lock a write takes is kept until the connection closes.
    db.pragma('locking_mode = EXCLUSIVE');
    db.exec('BEGIN EXCLUSIVE');
    db.exec('CREATE TABLE IF NOT EXISTS holder (pid INTEGER NOT NULL)');
    db.exec('DELETE FROM holder');
    db.prepare('INSERT INTO holder (pid) VALUES (?)').run(process.pid);
    db.exec('COMMIT');
    chmodSync(file, 0o600);
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
    // lock: made anew, once. Anything else (read-only, full) leaves the directory unguarded.
    if (retry && (code === 'SQLITE_NOTADB' || code === 'SQLITE_CORRUPT')) {
      rmSync(file, { force: true });
      return lockDataDir(dir, false);
    }
    return { file: null, release: () => undefined };
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
