// The data directory and database files are made with Perch's modes before SQLite touches them
// (docs/store.md: the directory 0700, the database 0600; SQLite gives -wal and -shm the file's mode).
import { closeSync, fchmodSync, mkdirSync, openSync } from 'node:fs';

const FILE_MODE = 0o600;
const DIR_MODE = 0o700;

/** The directory 0700 and the file 0600 before SQLite touches them; SQLite gives -wal and -shm the db file's mode. */
export function ensureFile(dir: string, file: string): void {
  mkdirSync(dir, { recursive: true, mode: DIR_MODE });
  // 'a' creates without truncating; opening for write also fails early (EROFS, EACCES) on a
  // read-only file system, before SQLite reports it as a vague SQLITE_CANTOPEN.
  const fd = openSync(file, 'a', FILE_MODE);
  try {
    fchmodSync(fd, FILE_MODE); // the umask may have cut the mode at creation; an old file may be wider
  } catch {
    // Not our file to chmod (EPERM): it is writable, which is what matters here.
  } finally {
    closeSync(fd);
  }
}
