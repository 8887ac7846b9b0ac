// Writes that a power cut cannot leave half done (docs/store.md, docs/cloud-sync.md "Model
// updates"): data reaches the disk before the name points at it, and the rename itself is made
// durable by syncing the folder that holds it.
import { closeSync, fsyncSync, openSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

/** fsync of a file or a folder by its path (a folder's fsync makes renames in it durable). */
export function fsyncPath(path: string): void {
  const fd = openSync(path, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/**
 * Replaces `path` with `data` whole or not at all: written beside it, synced, renamed over it,
 * and the folder synced. `writeFileSync` truncates the file first, so a power cut or a SIGKILL
 * during it left a file cut short (a model.json that no longer parses: the model would not load
 * after the reboot).
 */
export function writeFileDurably(path: string, data: string | Uint8Array): void {
  const dir = dirname(path);
  const temp = join(dir, `.${basename(path)}.${process.pid}.tmp`);
  try {
    writeFileSync(temp, data);
    fsyncPath(temp);
    renameSync(temp, path);
  } catch (err) {
    rmSync(temp, { force: true });
    throw err;
  }
  fsyncPath(dir);
}
