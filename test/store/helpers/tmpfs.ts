// A real small or read-only file system for the degraded-store tests: a tmpfs mounted on a temp
// directory. Mounting needs CAP_SYS_ADMIN (root on a normal Linux box, not in most CI
// containers), so tryMountTmpfs() returns null when it cannot, and the tests fall back to
// SQLite-level mechanisms (PRAGMA max_page_count, query_only) that produce the same SQLite errors.
import { execFileSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { makeTempDir } from './temp-dir.js';

export interface TmpfsMount {
  path: string;
  remount(mode: 'ro' | 'rw'): void;
  unmount(): void;
}

function run(cmd: string, args: string[]): void {
  execFileSync(cmd, args, { stdio: 'ignore' });
}

export async function tryMountTmpfs(sizeBytes: number): Promise<TmpfsMount | null> {
  if (process.platform !== 'linux') return null;
  const dir = await makeTempDir('perch-tmpfs-');
  try {
    run('mount', ['-t', 'tmpfs', '-o', `size=${sizeBytes},mode=0700`, 'tmpfs', dir.path]);
  } catch {
    await dir.remove();
    return null;
  }
  let mounted = true;
  return {
    path: dir.path,
    remount: (mode) => run('mount', ['-o', `remount,${mode}`, dir.path]),
    unmount: () => {
      if (!mounted) return;
      mounted = false;
      try {
        run('umount', [dir.path]);
      } catch {
        run('umount', ['-l', dir.path]); // something still holds a file open: detach lazily
      }
      rmSync(dir.path, { recursive: true, force: true });
    },
  };
}
