// What becomes of a database file found corrupt at start-up (docs/store.md "A corrupt file: what is
// salvaged"): salvaged into <file>.salvaged while it is still in place (salvage.ts), moved aside
// with its -wal as found, and the salvaged file renamed into its place; and at every start, the
// end of a salvage a crash interrupted.
import { existsSync, renameSync, rmSync } from 'node:fs';
import { fsyncPath } from '../base/durable-file.js';
import type { Clock } from '../base/clock.js';
import type { Logger } from '../base/log.js';
import { ensureFile } from './data-file.js';
import { salvageDatabase, type SalvageResult } from './salvage.js';

export interface SalvageBeforeMoveOptions {
  dataDir: string;
  timeoutMs: number;
  maxPayloadBytes: number;
  clock: Clock;
  logger: Logger;
}

/** Where a salvage writes before the fresh file takes the damaged one's place. */
export const salvagedFile = (file: string): string => `${file}.salvaged`;

/**
 * A salvage that ended while the damaged file was still in place is incomplete or was never put
 * in place: the damaged file is salvaged again. One that ended after it was moved aside is
 * complete (it is closed before the move) and only its rename was missed: it is the database.
 */
export function finishSalvage(file: string): void {
  const salvaged = salvagedFile(file);
  if (!existsSync(salvaged)) return;
  if (!existsSync(file)) renameSync(salvaged, file);
  else rmSync(salvaged, { force: true });
  rmSync(`${salvaged}-journal`, { force: true });
}

/** The salvage into `<file>.salvaged`, or undefined when there is none (turned off, or that file cannot be written). */
export function salvageBeforeMove(file: string, opts: SalvageBeforeMoveOptions): SalvageResult | undefined {
  const { timeoutMs, clock, logger } = opts;
  if (timeoutMs <= 0) return undefined;
  const target = salvagedFile(file);
  try {
    rmSync(target, { force: true });
    rmSync(`${target}-journal`, { force: true });
    ensureFile(opts.dataDir, target); // 0600 before SQLite writes to it, like the database
    return salvageDatabase(file, target, { clock, timeoutMs, maxPayloadBytes: opts.maxPayloadBytes });
  } catch (err) {
    // A full or read-only disk: what the damaged file holds stays in its copy.
    logger.warn({ err, file }, 'salvage of the corrupt database failed; it is moved aside unread');
    removeQuietly(target);
    removeQuietly(`${target}-journal`);
    return undefined;
  }
}

export function removeQuietly(f: string): void {
  try {
    rmSync(f, { force: true });
  } catch {
    // read-only: finishSalvage removes it at the next start that can
  }
}

/** The salvaged file in the damaged one's place (moved aside by now), the rename made durable. */
export function placeSalvaged(file: string, dir: string): void {
  renameSync(salvagedFile(file), file);
  fsyncPath(dir);
}

/** Renames the file and its WAL out of the way; the -shm index belongs to the old file and is removed. */
export function moveAside(file: string, at: number): string {
  let target = `${file}.corrupt-${at}`;
  for (let i = 1; existsSync(target); i++) target = `${file}.corrupt-${at}-${i}`;
  renameSync(file, target);
  for (const suffix of ['-wal', '-journal']) {
    if (existsSync(file + suffix)) renameSync(file + suffix, target + suffix);
  }
  rmSync(`${file}-shm`, { force: true });
  return target;
}
