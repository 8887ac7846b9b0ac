// What every model download shares, whatever carries the bytes (MQTT chunks: download.ts; HTTP
// Range requests: http-download.ts): the chunks are staged through the same journal (stager.ts,
// chunk-store.ts), so a reboot resumes from what is durable; the same rate cap
// (`download.maxBytesPerSecond`); progress saved under the agent's state and reported at most
// once a second (docs/cloud-sync.md "Model updates"). A transport adds how chunks are asked for
// and how they arrive.
import { webcrypto } from 'node:crypto';
import { PerchError } from '../../../runtime/base/errors.js';
import type { Logger } from '../../../runtime/base/log.js';
import type { RuntimePort } from '../../../runtime/port/runtime-port.js';
import { CHUNK_DIGEST_BYTES, type ModelSpec } from '../../protocol/index.js';
import { AGENT_KEYS } from '../state-keys.js';
import type { AgentStats } from '../stats.js';
import { TokenBucket } from '../token-bucket.js';
import type { ChunkStore } from './chunk-store.js';
import { isNoSpace } from './space.js';
import { ChunkStager } from './stager.js';

const PROGRESS_EVERY_MS = 1000;

/**
 * A chunk whose bytes are wrong (not its length, or not its SHA-256 in the spec's chunkDigests)
 * is dropped and asked for again after a backoff; one chunk may come wrong this many times, the
 * next wrong copy fails the download (PERCH_ERR_MODEL_CHUNK_MISMATCH; docs/cloud-sync.md "Model
 * updates"). Each wrong copy costs a hash of at most 4 MiB, so the bounds bound that work too.
 */
export const MAX_BAD_COPIES_PER_CHUNK = 3;
/** Distinct chunks that may come wrong in one download; one more fails it. */
export const MAX_BAD_CHUNKS = 16;
/** Wait before a wrong chunk is asked for again: doubles per wrong copy of it (1, 2, 4 s). */
export const BAD_CHUNK_BACKOFF_MS = 1000;

/** What of the runtime a download uses: cloud.download, the clock, its state (progress). */
export type DownloadRuntime = Pick<RuntimePort, 'cloud' | 'clock' | 'log' | 'state'>;

export interface DownloadOptions {
  /** Outstanding chunks are asked for again after this long without any chunk arriving. */
  chunkTimeoutMs: number;
  /** Rounds of asking again without progress before the download fails (MODEL_DOWNLOAD_FAILED). */
  maxRetries: number;
}

export interface DownloadProgress {
  version: number;
  sha256: string;
  size: number;
  chunkSize: number;
  total: number;
  staged: number;
  /** Chunks asked for by this process (a resumed download asks only for the missing ones). */
  requested: number;
}

/** One model version being fetched: over MQTT chunks (ChunkDownload) or HTTP (HttpDownload). */
export interface ModelDownload {
  readonly total: number;
  readonly stagedChunks: number;
  /** Resolves once every chunk is staged durably; rejects with a PerchError (or the abort reason). */
  run(signal: AbortSignal): Promise<void>;
  /** An MQTT chunk arrived; false when the index is not one of this download's. */
  receive(index: number, data: Buffer): boolean;
}

/** Saves a download's progress under progressKey (for reporting; the staging journal is the truth). */
export function saveDownloadProgress(runtime: DownloadRuntime, log: Logger, name: string, spec: ModelSpec, total: number, staged: number, requested: number): void {
  const p: DownloadProgress = { version: spec.version, sha256: spec.sha256, size: spec.size, chunkSize: spec.chunkSize, total, staged, requested };
  try {
    runtime.state.set(AGENT_KEYS.download(name), p);
  } catch (err) {
    log.warn({ err }, 'download progress not persisted');
  }
}

/**
 * A write or commit that failed for want of space (the disk filled after check-space passed:
 * another writer, logs) is PERCH_ERR_MODEL_NO_SPACE, not a download failure: the updater then
 * removes what was staged, so the space goes back to the store, and the update is tried again
 * (check-space first) at the next desired document or start (docs/cloud-sync.md "Model updates").
 */
function stageFailure(err: Error): PerchError {
  if (isNoSpace(err)) return new PerchError('PERCH_ERR_MODEL_NO_SPACE', `the disk filled during the download: ${err.message}`, { cause: err });
  return new PerchError('PERCH_ERR_MODEL_DOWNLOAD_FAILED', err.message, { cause: err });
}

export abstract class StagedDownload implements ModelDownload {
  readonly total: number;
  protected readonly stager: ChunkStager;
  protected readonly bucket: TokenBucket;
  protected readonly log: Logger;
  /** Chunks asked for by this process. */
  protected requested = 0;
  /** clock.now() of the last progress save. */
  private savedAt = 0;
  /** spec.chunkDigests decoded (its length was checked before the download), or null without. */
  private readonly digests: Buffer | null;
  /** Wrong copies received, per chunk index. */
  private readonly badCopies = new Map<number, number>();

  constructor(
    protected readonly runtime: DownloadRuntime,
    protected readonly stats: AgentStats,
    readonly name: string,
    readonly spec: ModelSpec,
    protected readonly store: ChunkStore,
    protected readonly opts: DownloadOptions,
    /** Progress was saved (at most once a second): state/reported shows it. */
    private readonly onProgress: () => void,
    logFields: Record<string, unknown> = {},
  ) {
    this.total = Math.ceil(spec.size / spec.chunkSize);
    // One chunk must always fit in the bucket, or a small cap would stall the download.
    this.bucket = new TokenBucket(runtime.clock, runtime.cloud.download.maxBytesPerSecond, spec.chunkSize);
    this.log = runtime.log.child({ model: name, version: spec.version, ...logFields });
    this.digests = spec.chunkDigests === undefined ? null : Buffer.from(spec.chunkDigests, 'base64');
    this.stager = new ChunkStager(store, new Set(), {
      staged: () => this.onStaged(),
      failed: (err) => this.onStageFailed(stageFailure(err)),
    });
  }

  abstract run(signal: AbortSignal): Promise<void>;
  abstract receive(index: number, data: Buffer): boolean;
  /** A chunk became durable. */
  protected abstract onStaged(): void;
  /** Staging failed: the download fails with `err`. */
  protected abstract onStageFailed(err: PerchError): void;

  get stagedChunks(): number {
    return this.stager.have.size;
  }

  get requestedChunks(): number {
    return this.requested;
  }

  /**
   * Takes in what the staging journal holds (a resume) and saves progress; false when every
   * chunk is already staged (nothing to fetch), else opens the store for writing.
   * `via`: how the log names the transport (' over HTTP', or '' for MQTT chunks).
   */
  protected async resume(via: string): Promise<boolean> {
    this.store.ensure();
    for (const i of this.store.scan(this.total)) this.stager.have.add(i);
    this.saveProgress();
    const have = this.stager.have.size;
    this.log.info({ staged: have, total: this.total }, have > 0 ? `resuming model download${via} from staged chunks` : `starting model download${via}`);
    if (have === this.total) return false;
    await this.store.open();
    return true;
  }

  /**
   * Progress is for reporting (the journal is the truth) and each save is an fsynced SQLite
   * write on the event loop, and a state/reported message: once a second is plenty.
   */
  protected reportProgress(): void {
    if (this.runtime.clock.now() - this.savedAt < PROGRESS_EVERY_MS) return;
    this.saveProgress();
    const staged = this.stager.have.size;
    this.log.info({ staged, total: this.total, percent: Math.floor((100 * staged) / this.total) }, 'model download progress');
    this.onProgress();
  }

  /** Why a received chunk is not chunk `index`'s length, or null when it is. */
  protected lengthProblem(index: number, data: Buffer): string | null {
    const expected = this.chunkBytes(index);
    // Every chunk but the last is exactly chunkSize, the last the rest (chunks are written in
    // place: a short one would leave a hole, a long one overwrite the next).
    return data.byteLength === expected ? null : `chunk ${index} is ${data.byteLength} bytes, expected ${expected} (size ${this.spec.size}, chunkSize ${this.spec.chunkSize})`;
  }

  /** The spec lists each chunk's digest (chunkDigests): digestProblem() has something to check. */
  protected get checksDigests(): boolean {
    return this.digests !== null;
  }

  /**
   * Why chunk `index`'s bytes do not match its SHA-256 in chunkDigests, or null when they do (or
   * there is no list). Hashed on the libuv thread pool (WebCrypto), not the event loop: at 64 KiB
   * a chunk costs 0.1-0.3 ms of SHA-256, which would land on the main port's turns.
   */
  protected async digestProblem(index: number, data: Buffer): Promise<string | null> {
    if (!this.digests) return null;
    const want = this.digests.subarray(index * CHUNK_DIGEST_BYTES, (index + 1) * CHUNK_DIGEST_BYTES);
    const got = Buffer.from(await webcrypto.subtle.digest('SHA-256', data));
    return got.equals(want) ? null : `chunk ${index} does not match its SHA-256 in chunkDigests`;
  }

  /**
   * Counts a wrong copy of chunk `index` (dropped, never staged). Returns the download's failure
   * once a bound is reached, else how long to wait before asking for it again.
   */
  protected badChunk(index: number, problem: string): { fail: PerchError } | { retryInMs: number } {
    this.stats.chunksRejected++;
    const copies = (this.badCopies.get(index) ?? 0) + 1;
    this.badCopies.set(index, copies);
    this.log.warn({ index, copies, badChunks: this.badCopies.size, problem }, 'chunk with wrong bytes dropped');
    if (copies > MAX_BAD_COPIES_PER_CHUNK) {
      return { fail: new PerchError('PERCH_ERR_MODEL_CHUNK_MISMATCH', `chunk ${index} came with wrong bytes ${copies} times (${problem})`) };
    }
    if (this.badCopies.size > MAX_BAD_CHUNKS) {
      return { fail: new PerchError('PERCH_ERR_MODEL_CHUNK_MISMATCH', `${this.badCopies.size} different chunks came with wrong bytes, over ${MAX_BAD_CHUNKS} (last: ${problem})`) };
    }
    return { retryInMs: BAD_CHUNK_BACKOFF_MS * 2 ** (copies - 1) };
  }

  protected chunkBytes(index: number): number {
    return Math.min(this.spec.chunkSize, this.spec.size - index * this.spec.chunkSize);
  }

  protected saveProgress(): void {
    this.savedAt = this.runtime.clock.now();
    saveDownloadProgress(this.runtime, this.log, this.name, this.spec, this.total, this.stager.have.size, this.requested);
  }
}
