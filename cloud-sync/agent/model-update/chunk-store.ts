// Durable staging of one model version's chunks, in <stagingDir>/<name>/<version>-<sha256>-<chunkSize>/
// (keyed by the whole digest and the chunk size, so chunks of two different files or two
// chunkings never mix; with cloud.allowUnsignedModels a file made to share a 16-digit prefix
// with another reused its staged chunks):
// - sha256: the digest the folder's chunks belong to, written before any chunk; chunks in a
//   folder whose file names another digest (or none: copied by hand, an older layout) are
//   dropped, never reused.
// - model.onnx: every chunk written in place at index * chunkSize (positional writes, no fsync
//   each). It is the model only once every chunk is staged.
// - staged.log: the journal of staged chunks, 8 bytes a record (index, and a check word).
// commit() fdatasyncs model.onnx, then appends the records of the chunks it covered and
// fdatasyncs the journal. A record is therefore only ever written after its bytes are on disk:
// after a SIGKILL or a power cut the journal names chunks that are there, and a chunk written
// but not yet committed is simply fetched again. One file and two fsyncs per batch instead of a
// created, fsynced and renamed file per chunk is what made downloads several times faster.
import { createHash } from 'node:crypto';
import { constants, existsSync, mkdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { writeFileDurably } from '../../../runtime/base/durable-file.js';
import { open, stat, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { PerchError } from '../../../runtime/base/errors.js';

const RECORD = 8;
/** The check word of a record: a torn or zeroed tail never reads as a staged chunk. */
const check = (index: number): number => (~index ^ 0x50455243) >>> 0;

export class ChunkStore {
  readonly dir: string;
  private data: FileHandle | null = null;
  private journal: FileHandle | null = null;

  constructor(
    stagingDir: string,
    name: string,
    version: number,
    private readonly sha256: string,
    private readonly chunkSize: number,
  ) {
    // 64 hex digits (the protocol's ModelSpec.sha256): the folder name stays under 100 bytes.
    this.dir = join(stagingDir, name, `${version}-${sha256}-${chunkSize}`);
  }

  /** The model file the chunks are written into (complete once every chunk is staged). */
  get modelFile(): string {
    return join(this.dir, 'model.onnx');
  }

  private get journalFile(): string {
    return join(this.dir, 'staged.log');
  }

  private get digestFile(): string {
    return join(this.dir, 'sha256');
  }

  /** True when the folder's chunks are of exactly this file. */
  private owned(): boolean {
    try {
      return readFileSync(this.digestFile, 'utf8') === this.sha256;
    } catch {
      return false;
    }
  }

  /** Disk blocks the staging file holds now (chunks are written in place, so it may be sparse). */
  allocatedBytes(): number {
    const st = statSync(this.modelFile, { throwIfNoEntry: false });
    return st ? st.blocks * 512 : 0;
  }

  /** Creates the folder; staged bytes of any other file found in it are dropped first. */
  ensure(): void {
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    if (this.owned()) return;
    rmSync(this.modelFile, { force: true });
    rmSync(this.journalFile, { force: true });
    writeFileDurably(this.digestFile, this.sha256);
  }

  /** Indexes below `total` staged durably (by an earlier run of this process or another). */
  scan(total: number): Set<number> {
    const have = new Set<number>();
    if (!this.owned()) return have; // not this file's chunks (ensure() drops them)
    if (!existsSync(this.modelFile)) {
      // A journal without its data (removed by hand) names nothing that is there.
      rmSync(this.journalFile, { force: true });
      return have;
    }
    let log: Buffer;
    try {
      log = readFileSync(this.journalFile);
    } catch {
      return have;
    }
    for (let off = 0; off + RECORD <= log.length; off += RECORD) {
      const index = log.readUInt32LE(off);
      if (log.readUInt32LE(off + 4) === check(index) && index < total) have.add(index);
    }
    return have;
  }

  /** Opens both files for writing; existing content is kept (a resumed download). */
  async open(): Promise<void> {
    this.data ??= await open(this.modelFile, constants.O_RDWR | constants.O_CREAT, 0o600);
    this.journal ??= await open(this.journalFile, 'a', 0o600);
  }

  /** Writes a chunk in place. Not durable yet: commit() makes it so. */
  async write(index: number, bytes: Buffer): Promise<void> {
    const fh = this.handle(this.data);
    let done = 0;
    while (done < bytes.length) {
      const { bytesWritten } = await fh.write(bytes, done, bytes.length - done, index * this.chunkSize + done);
      done += bytesWritten;
    }
  }

  /** Makes written chunks durable, data first, then their journal records. */
  async commit(indexes: readonly number[]): Promise<void> {
    if (indexes.length === 0) return;
    await this.handle(this.data).datasync();
    const records = Buffer.allocUnsafe(indexes.length * RECORD);
    indexes.forEach((index, i) => {
      records.writeUInt32LE(index, i * RECORD);
      records.writeUInt32LE(check(index), i * RECORD + 4);
    });
    const journal = this.handle(this.journal);
    await journal.write(records);
    await journal.datasync();
  }

  async close(): Promise<void> {
    const [data, journal] = [this.data, this.journal];
    this.data = this.journal = null;
    await Promise.all([data?.close(), journal?.close()]);
  }

  /** Size and SHA-256 of the staged model file (call once every chunk is staged). */
  async measure(): Promise<{ size: number; sha256: string }> {
    const hash = createHash('sha256');
    const fh = await open(this.modelFile, 'r');
    try {
      const buf = Buffer.allocUnsafe(1024 * 1024);
      for (;;) {
        const { bytesRead } = await fh.read(buf, 0, buf.length, null);
        if (bytesRead === 0) break;
        hash.update(buf.subarray(0, bytesRead));
      }
    } finally {
      await fh.close();
    }
    return { size: (await stat(this.modelFile)).size, sha256: hash.digest('hex') };
  }

  remove(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }

  private handle(fh: FileHandle | null): FileHandle {
    if (!fh) throw new PerchError('PERCH_ERR_INTERNAL', 'chunk store used while not open');
    return fh;
  }
}
