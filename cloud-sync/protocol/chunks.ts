// How a model file may be cut into chunks (docs/protocol.md section 5, docs/cloud-sync.md
// "Checked before the download"). A ModelSpec's `chunkSize` is not signed (the signature covers
// what the device serves, not how the bytes travel), so whoever can write a device's desired
// document can change it on a validly signed spec. Every chunk costs the device a journal record,
// a set entry and a share of a request, and each chunk is held whole in memory until it is
// durable (`cloud.download.windowChunks` of them at a time): both are bounded here, for the
// device (refused before any chunk is asked for) and for `perch fleet` (refused at sign or push).
import { createHash } from 'node:crypto';

/** Chunks of one model file, at most: a 2 GiB model needs chunks of 2 KiB or more. */
export const MAX_MODEL_CHUNKS = 1024 * 1024;
/** Bytes of one chunk, at most (fleet's default is 64 KiB). */
export const MAX_CHUNK_BYTES = 4 * 1024 * 1024;

/** Why a file of `size` bytes in chunks of `chunkSize` is refused, or null when it is not. */
export function chunkingProblem(size: number, chunkSize: number): string | null {
  const chunks = Math.ceil(size / chunkSize);
  if (chunks > MAX_MODEL_CHUNKS) return `chunkSize ${chunkSize} cuts ${size} bytes into ${chunks} chunks, over ${MAX_MODEL_CHUNKS}`;
  // A chunk is never larger than the file: a small model in one chunk of a large chunkSize is fine.
  if (Math.min(size, chunkSize) > MAX_CHUNK_BYTES) return `chunkSize ${chunkSize} is over ${MAX_CHUNK_BYTES} bytes`;
  return null;
}

// Per-chunk digests (docs/protocol.md section 5, ModelSpec `chunkDigests`): the SHA-256 of each
// chunk, raw 32 bytes each in index order, base64. With them a device checks every chunk as it
// arrives and drops one whose bytes are wrong (a peer with publish rights on its chunk topics, an
// HTTP server answering a range with other bytes) instead of finding out from the whole file's
// digest at the end, when it cannot tell which chunk was wrong. Not signed, like chunkSize and
// url: they say how the bytes travel; the signed whole-file SHA-256 is still what the device
// checks last, so a wrong list costs the download, never what the device serves.

/** Bytes of one chunk's digest in `chunkDigests`. */
export const CHUNK_DIGEST_BYTES = 32;
/**
 * Chunks `perch fleet` lists digests for, at most: 32,768 (a 2 GiB model at the default 64 KiB)
 * make about 1.4 MB of base64 in every desired document naming the version. A model cut into
 * more gets no list, and devices check it by the whole file's digest only.
 */
export const MAX_DIGESTED_CHUNKS = 32 * 1024;

/** Why `chunkDigests` cannot be this file's list (wrong length), or null when it can. */
export function chunkDigestsProblem(size: number, chunkSize: number, chunkDigests: string): string | null {
  const chunks = Math.ceil(size / chunkSize);
  const bytes = Buffer.from(chunkDigests, 'base64').length;
  if (bytes !== chunks * CHUNK_DIGEST_BYTES) return `chunkDigests holds ${bytes} bytes, ${chunks} chunks of ${chunkSize} bytes need ${chunks * CHUNK_DIGEST_BYTES}`;
  return null;
}

/** The SHA-256 of each chunkSize piece of a stream of bytes, fed in pieces of any size. */
export class ChunkHasher {
  private readonly digests: Buffer[] = [];
  private hash = createHash('sha256');
  private filled = 0;

  constructor(private readonly chunkSize: number) {}

  update(data: Buffer): void {
    let off = 0;
    while (off < data.length) {
      const n = Math.min(data.length - off, this.chunkSize - this.filled);
      this.hash.update(data.subarray(off, off + n));
      this.filled += n;
      off += n;
      if (this.filled === this.chunkSize) this.next();
    }
  }

  /** `chunkDigests` of everything fed (the last chunk may be short). */
  digest(): string {
    if (this.filled > 0) this.next();
    return Buffer.concat(this.digests).toString('base64');
  }

  private next(): void {
    this.digests.push(this.hash.digest());
    this.hash = createHash('sha256');
    this.filled = 0;
  }
}

/** `chunkDigests` of a whole buffer. */
export function chunkDigestsOf(bytes: Buffer, chunkSize: number): string {
  const h = new ChunkHasher(chunkSize);
  h.update(bytes);
  return h.digest();
}
