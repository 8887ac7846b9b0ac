// A real small disk for "the disk is full" tests: a tmpfs of a few MiB mounted on a temporary
// folder, and a filler file that takes what is left. Mounting needs root (CI runs as root);
// elsewhere the tests that need it skip and say so.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, openSync, closeSync, rmSync, statfsSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface SmallDisk {
  dir: string;
  /** Writes a filler file until the disk is full (ENOSPC), leaving `leaveBytes` free at most. */
  fill(leaveBytes?: number): void;
  /** Deletes the filler file. */
  unfill(): void;
  free(): number;
  unmount(): void;
}

/** A mounted tmpfs of `bytes`, or null (with the reason) when this machine cannot mount one. */
export function mountSmallDisk(bytes: number): SmallDisk | string {
  const dir = mkdtempSync(join(tmpdir(), 'perch-small-disk-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${bytes}`, 'tmpfs', dir], { stdio: 'pipe' });
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    return `cannot mount a tmpfs (needs root): ${(err as Error).message.split('\n')[0]}`;
  }
  const filler = join(dir, 'filler');
  const free = (): number => {
    const s = statfsSync(dir);
    return Number(s.bavail) * Number(s.bsize);
  };
  return {
    dir,
    free,
    fill(leaveBytes = 0) {
      const fd = openSync(filler, 'a');
      const block = Buffer.alloc(64 * 1024, 1);
      try {
        while (free() > leaveBytes) {
          const n = Math.min(block.length, Math.max(1, free() - leaveBytes));
          writeSync(fd, block, 0, n);
        }
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
      } finally {
        closeSync(fd);
      }
    },
    unfill() {
      rmSync(filler, { force: true });
    },
    unmount() {
      try {
        execFileSync('umount', ['-l', dir], { stdio: 'pipe' });
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}
