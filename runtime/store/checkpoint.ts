// WAL checkpoint for the jobs, and the integrity check for tools. TRUNCATE copies every committed frame into the database file and
// truncates the -wal to zero bytes, so a burst of events does not keep its disk space (SQLite's
// automatic checkpoints are PASSIVE and never shrink the file).
import type { Database } from 'better-sqlite3';
import { toStoreError } from './store-errors.js';

export interface CheckpointResult {
  /** 1 when a reader or writer kept the checkpoint from finishing (it is retried next time). */
  busy: number;
  /** WAL frames before the checkpoint. */
  log: number;
  /** Frames copied into the database file. */
  checkpointed: number;
}

export function checkpointWal(db: Database, dir?: string): CheckpointResult {
  try {
    const rows = db.pragma('wal_checkpoint(TRUNCATE)') as CheckpointResult[];
    return rows[0] ?? { busy: 0, log: 0, checkpointed: 0 };
  } catch (err) {
    throw toStoreError(err, 'wal checkpoint', { dir });
  }
}

/** PRAGMA integrity_check: 'ok', or the problems found, one per line. */
export function integrityCheck(db: Database, dir?: string): string {
  try {
    const rows = db.pragma('integrity_check') as Array<{ integrity_check: string }>;
    return rows.map((r) => r.integrity_check).join('\n') || 'no result';
  } catch (err) {
    throw toStoreError(err, 'integrity check', { dir });
  }
}
