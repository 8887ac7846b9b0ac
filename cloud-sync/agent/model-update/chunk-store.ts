// Durable staging of one model version's chunks: one file per chunk index under
// <stagingDir>/<name>/<version>-<sha256 prefix>/. A chunk is written to a .part file, fsynced, then
// renamed: a chunk file that exists is complete, so after a disconnect or a SIGKILL the download
// resumes from the files there (a rename lost to a power cut only costs that chunk again). The
// folder is keyed by the digest too, so chunks of two different files never mix.
import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, rmSync } from 'node:fs';
import { open, readFile, rename } from 'node:fs/promises';
import { join } from 'node:path';

const CHUNK_FILE = /^chunk-(\d+)$/;

export class ChunkStore {
  readonly dir: string;

  constructor(stagingDir: string, name: string, version: number, sha256: string) {
    this.dir = join(stagingDir, name, `${version}-${sha256.slice(0, 16)}`);
  }

  /** The assembled model file (written by `assemble`). */
  get modelFile(): string {
    return join(this.dir, 'model.onnx');
  }

  ensure(): void {
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
  }

  /** Indexes below `total` already staged. */
  scan(total: number): Set<number> {
    const have = new Set<number>();
    let names: string[];
    try {
      names = readdirSync(this.dir);
    } catch {
      return have;
    }
    for (const n of names) {
      const m = CHUNK_FILE.exec(n);
      if (m && Number(m[1]) < total) have.add(Number(m[1]));
    }
    return have;
  }

  async write(index: number, data: Buffer): Promise<void> {
    const final = join(this.dir, `chunk-${index}`);
    const part = `${final}.part`;
    const fh = await open(part, 'w', 0o600);
    try {
      await fh.writeFile(data);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(part, final);
  }

  /** Concatenates chunks 0..total-1 into modelFile (fsynced), hashing on the way. */
  async assemble(total: number): Promise<{ size: number; sha256: string }> {
    const hash = createHash('sha256');
    let size = 0;
    const fh = await open(this.modelFile, 'w', 0o600);
    try {
      for (let i = 0; i < total; i++) {
        const data = await readFile(join(this.dir, `chunk-${i}`));
        hash.update(data);
        size += data.length;
        await fh.write(data);
      }
      await fh.sync();
    } finally {
      await fh.close();
    }
    return { size, sha256: hash.digest('hex') };
  }

  remove(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}
