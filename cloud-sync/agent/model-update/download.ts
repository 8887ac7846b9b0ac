// Fetching one model version's chunks over MQTT (docs/protocol.md section 5): the device asks with
// `P/devices/{id}/models/request {name, version, from, count}` and receives raw chunk bytes on
// `.../models/{name}/{version}/chunks/{index}`. A sliding window of `download.windowChunks`
// chunks is outstanding at a time: each chunk that arrives frees its slot at once (it is staged
// in the background, stager.ts), so the next request goes out while the disk catches up. Chunks
// already staged on disk are never asked for again (resume after a disconnect or a reboot);
// outstanding chunks are asked for again when nothing arrived for `chunkTimeoutMs` (injected
// clock); `download.maxBytesPerSecond` caps what is asked for, so the bytes that come back
// follow the cap. A chunk of the wrong length or digest (spec.chunkDigests) is dropped and asked
// for again after a backoff, within bounds (staged-download.ts).
import type { TimerHandle } from '../../../runtime/base/clock.js';
import { PerchError } from '../../../runtime/base/errors.js';
import type { ModelSpec, ModelsRequest } from '../../protocol/index.js';
import type { Connection } from '../connection.js';
import type { AgentStats } from '../stats.js';
import type { ChunkStore } from './chunk-store.js';
import { StagedDownload, type DownloadOptions, type DownloadRuntime } from './staged-download.js';

export class ChunkDownload extends StagedDownload {
  private readonly outstanding = new Set<number>();
  /** Lowest index not yet asked for in this pass over the file. */
  private cursor = 0;
  private retries = 0;
  private timer: TimerHandle | null = null;
  private fillTimer: TimerHandle | null = null;
  /** Chunks whose digest is being checked (not staged yet, not to be asked for). */
  private readonly checking = new Set<number>();
  /** Chunks that came with wrong bytes, each with the timer that asks for it again. */
  private readonly cooling = new Map<number, TimerHandle>();
  private finished = false;
  /**
   * Chunks are taken only once the store is open and `done` exists. The updater routes a chunk
   * to this download as soon as it is created, and late chunks of an earlier attempt at the same
   * version (asked for again before it failed) arrive at any time: one taken while the store was
   * still opening failed the download before `done` existed, so nothing settled it and the update,
   * and the agent's stop, waited forever (test/cloud-sync/update-checks.test.ts, the disk filling).
   */
  private running = false;
  private resolveDone: () => void = () => undefined;
  private rejectDone: (err: Error) => void = () => undefined;

  constructor(
    runtime: DownloadRuntime,
    private readonly conn: Connection,
    stats: AgentStats,
    name: string,
    spec: ModelSpec,
    store: ChunkStore,
    opts: DownloadOptions,
    /** Progress was saved (at most once a second): state/reported shows it. */
    onProgress: () => void = () => undefined,
  ) {
    super(runtime, stats, name, spec, store, opts, onProgress);
  }

  /** Resolves once every chunk is staged durably; rejects with a PerchError (or the abort reason). */
  async run(signal: AbortSignal): Promise<void> {
    if (!(await this.resume(''))) return;
    const done = new Promise<void>((resolve, reject) => {
      this.resolveDone = resolve;
      this.rejectDone = reject;
    });
    this.running = true;
    const offOnline = this.conn.onOnline(() => this.fill());
    const offOffline = this.conn.onOffline(() => this.pause());
    const onAbort = (): void => this.finish(signal.reason instanceof Error ? signal.reason : new Error('download aborted'));
    signal.addEventListener('abort', onAbort, { once: true });
    try {
      if (signal.aborted) onAbort();
      // The agent subscribed to every chunk topic of this device at connect (index.ts).
      this.fill();
      await done;
    } finally {
      signal.removeEventListener('abort', onAbort);
      offOnline();
      offOffline();
      this.clearTimers();
      // Also on a cancel or a stop: what was written is committed, so a restart keeps it.
      await this.stager.drain();
      await this.store.close();
      this.saveProgress();
    }
  }

  /** A chunk arrived; false when the index is not one of this download's. */
  receive(index: number, data: Buffer): boolean {
    if (!this.running || this.finished || !Number.isInteger(index) || index < 0 || index >= this.total) return false;
    // A duplicate after a re-request (a copy that arrives while another is checked is one too:
    // if the one checked is wrong, the chunk is asked for again).
    if (this.stager.holds(index) || this.checking.has(index)) return true;
    this.stats.chunksReceived++;
    this.stats.chunkBytesReceived += data.byteLength;
    const problem = this.lengthProblem(index, data);
    if (problem) {
      this.dropBad(index, problem);
      return true;
    }
    if (!this.checksDigests) {
      this.take(index, data);
      return true;
    }
    this.checking.add(index);
    this.digestProblem(index, data).then(
      (wrong) => {
        this.checking.delete(index);
        if (this.finished) return;
        if (wrong) this.dropBad(index, wrong);
        else this.take(index, data);
      },
      (err: unknown) => {
        this.checking.delete(index);
        this.finish(new PerchError('PERCH_ERR_INTERNAL', `chunk ${index} could not be hashed: ${(err as Error).message}`, { cause: err }));
      },
    );
    return true;
  }

  /** A right chunk: staged, its slot freed. */
  private take(index: number, data: Buffer): void {
    this.outstanding.delete(index);
    this.retries = 0;
    this.armTimer();
    this.stager.add(index, data);
    this.fill();
  }

  protected onStaged(): void {
    if (this.finished) return;
    if (this.stager.have.size === this.total) {
      this.finish(null);
      return;
    }
    this.reportProgress();
    this.fill();
  }

  protected onStageFailed(err: PerchError): void {
    this.finish(err);
  }

  /**
   * A wrong copy of chunk `index` (any peer that may publish on the chunk topic, or a fleet file
   * that is not the spec's) is never staged. It used to fail the whole download, and the version
   * was not fetched again until a new one was pushed; now the chunk is asked for again after a
   * backoff, and the download fails only at the bounds (staged-download.ts). A right copy that
   * arrives meanwhile is taken as any chunk is.
   */
  private dropBad(index: number, problem: string): void {
    this.outstanding.delete(index);
    const r = this.badChunk(index, problem);
    if ('fail' in r) {
      this.finish(r.fail);
      return;
    }
    if (this.cooling.has(index)) return; // already waiting to be asked for again
    this.cooling.set(index, this.runtime.clock.setTimeout(() => {
      this.cooling.delete(index);
      this.cursor = Math.min(this.cursor, index);
      this.fill();
    }, r.retryInMs));
  }

  private fill(): void {
    if (this.finished || !this.conn.online) return;
    if (this.fillTimer) return; // a rate-limited fill is already scheduled
    const window = this.runtime.cloud.download.windowChunks;
    const batch: number[] = [];
    let i = this.cursor;
    for (; i < this.total && this.outstanding.size + batch.length < window; i++) {
      if (this.stager.holds(i) || this.outstanding.has(i) || this.checking.has(i) || this.cooling.has(i)) continue;
      const bytes = this.chunkBytes(i);
      if (this.bucket.available() < bytes) {
        this.fillTimer = this.runtime.clock.setTimeout(() => {
          this.fillTimer = null;
          this.fill();
        }, Math.max(1, this.bucket.waitMs(bytes)));
        break;
      }
      this.bucket.take(bytes);
      batch.push(i);
    }
    this.cursor = i;
    for (const idx of batch) this.outstanding.add(idx);
    for (const run of contiguousRuns(batch)) this.request(run.from, run.count);
    if (this.outstanding.size > 0 && !this.timer) this.armTimer();
  }

  private request(from: number, count: number): void {
    const msg: ModelsRequest = { name: this.name, version: this.spec.version, from, count };
    this.requested += count;
    this.stats.chunksRequested += count;
    this.log.debug({ from, count }, 'requesting chunks');
    this.conn.publish(this.conn.topics.modelsRequest, JSON.stringify(msg)).catch((err: unknown) => {
      // Offline: pause() already forgot the outstanding chunks; they are asked for at reconnect.
      this.log.debug({ err, from, count }, 'chunk request not delivered');
    });
  }

  private armTimer(): void {
    if (this.timer) this.runtime.clock.clearTimeout(this.timer);
    this.timer = this.runtime.clock.setTimeout(() => this.onTimeout(), this.opts.chunkTimeoutMs);
  }

  private onTimeout(): void {
    this.timer = null;
    if (this.finished || this.outstanding.size === 0) return;
    this.retries++;
    if (this.retries > this.opts.maxRetries) {
      const missing = this.total - this.stager.have.size - this.stager.unstaged;
      this.finish(new PerchError('PERCH_ERR_MODEL_DOWNLOAD_FAILED', `${missing} chunk(s) never arrived after ${this.opts.maxRetries} re-request(s)`));
      return;
    }
    this.log.warn({ outstanding: this.outstanding.size, retry: this.retries }, 'chunks did not arrive in time; asking again');
    this.outstanding.clear();
    this.cursor = 0;
    this.fill();
  }

  /** Offline: nothing outstanding survives a reconnect on our side; ask again when back. */
  private pause(): void {
    this.clearTimers();
    this.outstanding.clear();
    this.cursor = 0;
    this.retries = 0;
  }

  private finish(err: Error | null): void {
    if (this.finished) return;
    this.finished = true;
    this.clearTimers();
    if (err) this.rejectDone(err);
    else this.resolveDone();
  }

  private clearTimers(): void {
    if (this.timer) this.runtime.clock.clearTimeout(this.timer);
    if (this.fillTimer) this.runtime.clock.clearTimeout(this.fillTimer);
    this.timer = null;
    this.fillTimer = null;
    for (const h of this.cooling.values()) this.runtime.clock.clearTimeout(h);
    this.cooling.clear();
  }

}

export function contiguousRuns(sorted: readonly number[]): { from: number; count: number }[] {
  const runs: { from: number; count: number }[] = [];
  for (const i of sorted) {
    const last = runs.at(-1);
    if (last && last.from + last.count === i) last.count++;
    else runs.push({ from: i, count: 1 });
  }
  return runs;
}
