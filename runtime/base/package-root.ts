import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PerchError } from './errors.js';

/** The package root (the folder with package.json), whether running from source or from dist/. */
export function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    const up = dirname(dir);
    if (up === dir) throw new PerchError('PERCH_ERR_INTERNAL', `cannot find package.json above ${fileURLToPath(import.meta.url)}: a broken install`);
    dir = up;
  }
}
