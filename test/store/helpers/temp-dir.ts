// Temporary data directories for store tests: a fresh one per test, removed afterwards.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface TempDir {
  path: string;
  /** A path inside it (not created). */
  join(...parts: string[]): string;
  remove(): Promise<void>;
}

export async function makeTempDir(prefix = 'perch-store-'): Promise<TempDir> {
  const path = await mkdtemp(join(tmpdir(), prefix));
  return {
    path,
    join: (...parts) => join(path, ...parts),
    remove: () => rm(path, { recursive: true, force: true }),
  };
}
