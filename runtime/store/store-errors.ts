// One mapping from what SQLite and the file system throw to Perch's store codes, reused by every
// store module so an emit, an ack and a state write fail with the same code for the same cause.
import { accessSync, constants } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { PerchError, type ErrorCode } from '../base/errors.js';

export type StoreCode = Extract<ErrorCode, 'PERCH_ERR_STORE_READONLY' | 'PERCH_ERR_STORE_FULL' | 'PERCH_ERR_STORE_UNAVAILABLE'>;

function codeOf(err: unknown): string {
  if (typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'string') return err.code;
  return '';
}

/** True for SQLite's "not a database" and "malformed" families: the file itself is damaged. */
export function isCorruptionError(err: unknown): boolean {
  const code = codeOf(err);
  return code === 'SQLITE_NOTADB' || code.startsWith('SQLITE_CORRUPT');
}

/**
 * The store code for a thrown error. `dir`, when given, lets other errors be told apart: SQLite
 * reports a write into a file system that went read-only under it (an SD card the kernel
 * remounted ro after errors) as SQLITE_IOERR_* or SQLITE_CANTOPEN without the errno, and a
 * recursive mkdir on a read-only mount reports ENOENT; so we ask the file system directly, at the
 * nearest directory that exists. Only on the error path, so the probe costs nothing normally.
 */
export function storeErrorCode(err: unknown, dir?: string): StoreCode {
  const code = codeOf(err);
  // SQLITE_READONLY_* extended codes (DBMOVED, RECOVERY, CANTLOCK...) are all "cannot write".
  if (code.startsWith('SQLITE_READONLY') || code === 'EACCES' || code === 'EROFS' || code === 'EPERM') {
    return 'PERCH_ERR_STORE_READONLY';
  }
  if (code === 'SQLITE_FULL' || code === 'ENOSPC' || code === 'EDQUOT') return 'PERCH_ERR_STORE_FULL';
  if (dir !== undefined) {
    const probed = probeDir(dir);
    if (probed) return probed;
  }
  return 'PERCH_ERR_STORE_UNAVAILABLE';
}

function probeDir(dir: string): StoreCode | undefined {
  for (let d = resolve(dir); ; d = dirname(d)) {
    try {
      accessSync(d, constants.W_OK);
      return undefined;
    } catch (e) {
      const c = codeOf(e);
      if (c === 'EROFS' || c === 'EACCES' || c === 'EPERM') return 'PERCH_ERR_STORE_READONLY';
      if (c !== 'ENOENT' || dirname(d) === d) return undefined;
    }
  }
}

export interface StoreErrorContext {
  /** Data directory, probed when the error itself is not conclusive. */
  dir?: string;
  /**
   * Set when the store was opened degraded (read-only because the directory was read-only or the
   * disk full at start-up): the connection is query_only, so SQLite says "readonly" either way,
   * and this restores the real cause for the caller.
   */
  degraded?: Extract<StoreCode, 'PERCH_ERR_STORE_READONLY' | 'PERCH_ERR_STORE_FULL'>;
}

/** Wraps any store failure as a PerchError with the mapped code; PerchErrors pass through. */
export function toStoreError(err: unknown, what: string, ctx: StoreErrorContext = {}): PerchError {
  if (err instanceof PerchError) return err;
  const message = err instanceof Error ? err.message : String(err);
  let code = storeErrorCode(err, ctx.dir);
  if (ctx.degraded && code === 'PERCH_ERR_STORE_READONLY') {
    code = ctx.degraded;
    const why = ctx.degraded === 'PERCH_ERR_STORE_FULL' ? 'the disk was full' : 'the data directory was read-only';
    return new PerchError(code, `${what}: the store is read-only since start-up because ${why}`, { cause: err });
  }
  return new PerchError(code, `${what}: ${message}`, { cause: err });
}
