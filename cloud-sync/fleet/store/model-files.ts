// Model files of the fleet store held open between chunk requests. A device asks for chunks with
// a sliding window, one request per chunk; reading and validating spec.json, opening model.onnx
// and closing it again for each request cost serve more CPU than sending the chunk itself.
// spec.json is stat()ed on every request: `push` renames a new one into place, so a version
// pushed again (another file under the same number) is noticed and its file opened anew.
import { statSync, type Stats } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { PerchError } from '../../../runtime/base/errors.js';
import type { ModelSpec } from '../../protocol/schemas.js';
import { MODEL_FILE, readSpec, SPEC_FILE, versionDir } from './model-store.js';

interface Entry {
  spec: ModelSpec;
  file: Promise<FileHandle>;
  /** dev:ino:mtime:size of spec.json when opened. */
  identity: string;
  /** Requests reading from it now: it is closed only once they are done. */
  users: number;
  stale: boolean;
  lastUsed: number;
}

export interface OpenModel {
  spec: ModelSpec;
  file: FileHandle;
  /** Call once done reading. */
  release(): void;
}

const identityOf = (s: Stats): string => `${s.dev}:${s.ino}:${s.mtimeMs}:${s.size}`;

export class ModelFiles {
  private readonly entries = new Map<string, Entry>();

  constructor(
    private readonly store: string,
    /** Versions held open at most (the least recently used idle one is closed first). */
    private readonly maxOpen = 16,
  ) {}

  /** The spec and an open model.onnx of a stored version, or PERCH_ERR_FLEET_MODEL_MISSING. */
  async get(name: string, version: number): Promise<OpenModel> {
    const key = `${name}/${version}`;
    const dir = versionDir(this.store, name, version);
    const st = statSync(join(dir, SPEC_FILE), { throwIfNoEntry: false });
    if (!st) throw new PerchError('PERCH_ERR_FLEET_MODEL_MISSING', `the fleet store has no ${name} version ${version}`);
    let e = this.entries.get(key);
    if (e && e.identity !== identityOf(st)) {
      this.retire(key, e);
      e = undefined;
    }
    if (!e) {
      const spec = readSpec(this.store, name, version); // throws FLEET_MODEL_MISSING before anything is opened
      const created: Entry = { spec, file: open(join(dir, MODEL_FILE), 'r'), identity: identityOf(st), users: 0, stale: false, lastUsed: 0 };
      // A file that cannot be opened is not kept: the next request tries again.
      created.file.catch(() => {
        if (this.entries.get(key) === created) this.entries.delete(key);
      });
      this.entries.set(key, created);
      e = created;
    }
    const entry = e;
    entry.users++;
    entry.lastUsed = performance.now();
    this.evict(); // after counting this request: the entry it uses is never the one closed
    let fh: FileHandle;
    try {
      fh = await entry.file;
    } catch (err) {
      entry.users--;
      throw new PerchError('PERCH_ERR_FLEET_MODEL_MISSING', `${name} version ${version}: ${(err as Error).message}`, { cause: err });
    }
    let released = false;
    return {
      spec: entry.spec,
      file: fh,
      release: () => {
        if (released) return;
        released = true;
        entry.users--;
        if (entry.stale && entry.users === 0) void fh.close().catch(() => undefined);
      },
    };
  }

  async close(): Promise<void> {
    const all = [...this.entries.values()];
    this.entries.clear();
    await Promise.all(all.map(async (e) => (await e.file.catch(() => null))?.close().catch(() => undefined)));
  }

  /** Forgets an entry; its file closes once no request reads from it. */
  private retire(key: string, e: Entry): void {
    this.entries.delete(key);
    e.stale = true;
    if (e.users === 0) void e.file.then((fh) => fh.close()).catch(() => undefined);
  }

  private evict(): void {
    while (this.entries.size > this.maxOpen) {
      let oldest: [string, Entry] | undefined;
      for (const kv of this.entries) if (kv[1].users === 0 && (!oldest || kv[1].lastUsed < oldest[1].lastUsed)) oldest = kv;
      if (!oldest) return; // all in use: over the bound for a moment
      this.retire(oldest[0], oldest[1]);
    }
  }
}
