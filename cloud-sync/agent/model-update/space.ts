// Step "check-space", before anything is downloaded: a model update costs its bytes twice (the
// staging file, then the copy the runtime installs into the model repository) and must leave
// `cloud.download.diskHeadroomBytes` free for the store, so one message naming a huge model can
// never fill the disk (docs/cloud-sync.md, "Checked before the download"). The declared size is
// checked against `cloud.download.maxModelBytes` first: a lie about the size is caught later by
// the download itself (a chunk past the declared size is refused) and the size and digest steps.
import { statfsSync, statSync } from 'node:fs';
import { PerchError } from '../../../runtime/base/errors.js';

export interface SpaceNeed {
  name: string;
  version: number;
  /** Declared size of the model file. */
  size: number;
  /** Bytes of it already staged (a resumed download needs only the rest). */
  staged: number;
  stagingDir: string;
  repositoryDir: string;
  maxModelBytes: number;
  headroomBytes: number;
  /** Bytes other updates in progress will still write (free now, but promised to them). */
  reserved: number;
}

/** Bytes free to an unprivileged writer on the disk holding `dir`. */
export function freeBytes(dir: string): number {
  const s = statfsSync(dir);
  return Number(s.bavail) * Number(s.bsize);
}

/** Throws PERCH_ERR_MODEL_TOO_LARGE or PERCH_ERR_MODEL_NO_SPACE; returns the bytes it needs. */
export function checkSpace(n: SpaceNeed): { needed: number; free: number } {
  const what = `model '${n.name}' version ${n.version}`;
  if (n.size > n.maxModelBytes) {
    throw new PerchError('PERCH_ERR_MODEL_TOO_LARGE', `${what} declares ${n.size} bytes, over cloud.download.maxModelBytes (${n.maxModelBytes})`);
  }
  const download = Math.max(0, n.size - n.staged);
  const sameDisk = statSync(n.stagingDir).dev === statSync(n.repositoryDir).dev;
  const checks = sameDisk
    ? [{ dir: n.stagingDir, needed: download + n.size + n.headroomBytes + n.reserved }]
    : // Where the others' bytes go is not told apart: each disk counts them all (conservative).
      [{ dir: n.stagingDir, needed: download + n.headroomBytes + n.reserved }, { dir: n.repositoryDir, needed: n.size + n.headroomBytes + n.reserved }];
  let last = { needed: 0, free: 0 };
  for (const c of checks) {
    const free = freeBytes(c.dir);
    if (free < c.needed) {
      throw new PerchError(
        'PERCH_ERR_MODEL_NO_SPACE',
        `${what} needs ${c.needed} bytes free on the disk of ${c.dir} (download, install copy, cloud.download.diskHeadroomBytes ${n.headroomBytes} and ${n.reserved} still to be written by other updates in progress); ${free} are`,
      );
    }
    last = { needed: c.needed, free };
  }
  return last;
}

/** True when `err` (or an error it wraps) is the disk being full: ENOSPC, or EDQUOT for a quota. */
export function isNoSpace(err: unknown): boolean {
  for (let e: unknown = err; e instanceof Error; e = e.cause) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOSPC' || code === 'EDQUOT') return true;
  }
  return false;
}
