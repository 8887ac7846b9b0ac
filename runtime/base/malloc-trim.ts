// glibc's malloc_trim(0) through Perch's own addon (native/malloc-trim.c, built into
// dist/native/malloc-trim.node by native/build.mjs; docs/reliability.md "Memory after a burst").
// After the never-reading attack glibc's main heap keeps free memory under a few small live blocks
// near its top; the collections after a burst free it inside the heap, malloc_trim gives it back
// to the system. The addon is optional (no compiler at build time, another C library): without it
// Perch runs as before, and says why once (api/idle-collector.ts).
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

export interface MallocTrim {
  /** False when the addon is missing, failed to load or was built without glibc. */
  readonly available: boolean;
  /** Why the trim is not available; null when it is. */
  readonly reason: string | null;
  /** malloc_trim(0): true if memory was given back to the system; false when not available. */
  trim(): boolean;
}

/** Where the build puts the addon: dist/native/, beside dist/runtime/ (this file is dist/runtime/base/). */
export const ADDON_PATH = fileURLToPath(new URL('../../native/malloc-trim.node', import.meta.url));

const unavailable = (reason: string): MallocTrim => ({ available: false, reason, trim: () => false });

/** Loads the addon; never throws. */
export function loadMallocTrim(path = ADDON_PATH): MallocTrim {
  let addon: { trim?: unknown; available?: unknown };
  try {
    addon = createRequire(import.meta.url)(path) as typeof addon;
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    return unavailable(e.code === 'MODULE_NOT_FOUND' ? `${path} not built (native/build.mjs needs a C compiler and Node's headers)` : `${path}: ${e.message}`);
  }
  if (typeof addon.trim !== 'function') return unavailable(`${path} exports no trim()`);
  if (addon.available !== true) return unavailable('not glibc: the C library has no malloc_trim');
  const trim = addon.trim as () => unknown;
  return { available: true, reason: null, trim: () => trim() === true };
}

let shared: MallocTrim | null = null;

/** The process's one addon, loaded on first use. */
export function mallocTrim(): MallocTrim {
  shared ??= loadMallocTrim();
  return shared;
}
