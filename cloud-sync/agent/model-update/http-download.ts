// Fetching one model version over HTTP(S) when its ModelSpec carries a `url` (docs/protocol.md
// section 5, docs/cloud-sync.md "Model bytes over HTTP"): Range requests for runs of missing
// chunks, each chunk staged exactly as an MQTT chunk is (stager.ts, chunk-store.ts), so a reboot
// resumes from the staging journal with a Range request for what is missing, and the file is
// checked by size, digest and (before any byte was asked for) signature by the same steps.
// Bounded: one request at a time, one chunk in hand, at most `download.windowChunks` chunks
// written but not yet durable before reading pauses (TCP backpressure). A server that ignores
// Range (200 for a part), answers another range, or sends more bytes than the range is refused.
// A chunk whose bytes do not match its digest (spec.chunkDigests) is dropped and asked for again
// after the usual backoff, as an MQTT chunk is (download.ts), within the same bounds.
import type { TimerHandle } from '../../../runtime/base/clock.js';
import { PerchError } from '../../../runtime/base/errors.js';
import type { ModelSpec } from '../../protocol/index.js';
import type { AgentStats } from '../stats.js';
import type { ChunkStore } from './chunk-store.js';
import { StagedDownload, type DownloadOptions, type DownloadRuntime } from './staged-download.js';
/** First wait after a failed request; doubles per failure in a row, up to 30 s. */
const RETRY_BASE_MS = 500;
const RETRY_MAX_MS = 30_000;

/** A refusal that asking again cannot fix (the server breaks the Range contract). */
class Refused extends PerchError {}

export class HttpDownload extends StagedDownload {
  private readonly url: string;
  private failure: Error | null = null;
  /**
   * Chunks handed to the stager by this run. The stager's holds() is not enough: a chunk being
   * committed is briefly in none of its sets, and would be asked for again.
   */
  private readonly received = new Set<number>();
  private wake: (() => void) | null = null;

  constructor(
    runtime: DownloadRuntime,
    stats: AgentStats,
    name: string,
    spec: ModelSpec,
    store: ChunkStore,
    opts: DownloadOptions,
    onProgress: () => void = () => undefined,
  ) {
    if (!spec.url) throw new PerchError('PERCH_ERR_INTERNAL', 'an HTTP download needs a url');
    super(runtime, stats, name, spec, store, opts, onProgress, { url: redact(spec.url) });
    this.url = spec.url;
  }

  /** Chunks come over HTTP, never over MQTT. */
  receive(): boolean {
    return false;
  }

  async run(signal: AbortSignal): Promise<void> {
    if (!(await this.resume(' over HTTP'))) return;
    try {
      let failures = 0;
      for (let run = this.nextRun(); run; run = this.nextRun()) {
        const before = this.received.size;
        try {
          await this.fetchRun(run.from, run.count, signal);
          failures = 0;
        } catch (err) {
          if (signal.aborted) throw signal.reason;
          if (err instanceof Refused || this.failure) throw this.failure ?? err;
          // Progress within the failed request counts: a flaky link that moves on is not stuck.
          failures = this.received.size > before ? 1 : failures + 1;
          if (failures > this.opts.maxRetries) {
            throw new PerchError('PERCH_ERR_MODEL_DOWNLOAD_FAILED', `${(err as Error).message} (${failures} failed request(s) in a row)`, { cause: err });
          }
          const waitMs = Math.min(RETRY_MAX_MS, RETRY_BASE_MS * 2 ** (failures - 1));
          this.log.warn({ err: (err as Error).message, retry: failures, waitMs }, 'model download request failed; asking again');
          await this.sleep(waitMs, signal);
        }
        if (this.failure) throw this.failure;
      }
      await this.stager.drain();
      if (this.failure) throw this.failure;
    } finally {
      await this.stager.drain();
      await this.store.close();
      this.saveProgress();
    }
  }

  /** The first run of chunks neither staged nor in flight, at most windowChunks long. */
  private nextRun(): { from: number; count: number } | null {
    const max = this.runtime.cloud.download.windowChunks;
    const have = (i: number): boolean => this.received.has(i) || this.stager.have.has(i);
    let from = 0;
    while (from < this.total && have(from)) from++;
    if (from >= this.total) return null;
    let count = 1;
    while (count < max && from + count < this.total && !have(from + count)) count++;
    return { from, count };
  }

  private async fetchRun(from: number, count: number, signal: AbortSignal): Promise<void> {
    const start = from * this.spec.chunkSize;
    const end = Math.min(this.spec.size, (from + count) * this.spec.chunkSize) - 1;
    const ac = new AbortController();
    const onAbort = (): void => ac.abort(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    // No byte for chunkTimeoutMs: give up on this request and ask again.
    let idle: TimerHandle | null = null;
    const touch = (): void => {
      if (idle) this.runtime.clock.clearTimeout(idle);
      idle = this.runtime.clock.setTimeout(() => ac.abort(new Error(`no data for ${this.opts.chunkTimeoutMs} ms`)), this.opts.chunkTimeoutMs);
    };
    try {
      touch();
      this.requested += count;
      this.stats.chunksRequested += count;
      const res = await fetch(this.url, {
        headers: { range: `bytes=${start}-${end}`, 'accept-encoding': 'identity' },
        signal: ac.signal,
        redirect: 'follow',
      });
      try {
        this.checkResponse(res, start, end);
      } catch (err) {
        await res.body?.cancel().catch(() => undefined);
        throw err;
      }
      if (!res.body) throw new Error('response without a body');
      let index = from;
      let chunk = Buffer.allocUnsafe(this.chunkBytes(index));
      let filled = 0;
      for await (const part of res.body as AsyncIterable<Uint8Array>) {
        touch();
        let off = 0;
        while (off < part.length) {
          if (index >= from + count) throw new Refused('PERCH_ERR_MODEL_DOWNLOAD_FAILED', `the server sent more than the ${end - start + 1} bytes of range ${start}-${end}`);
          const n = Math.min(part.length - off, chunk.length - filled);
          chunk.set(part.subarray(off, off + n), filled);
          filled += n;
          off += n;
          if (filled === chunk.length) {
            // Wrong bytes in the answer (chunkDigests): this chunk is dropped and the request
            // ends; the next one starts at this chunk after the retry backoff, until the bounds
            // (staged-download.ts) fail the download.
            const problem = this.lengthProblem(index, chunk) ?? (await this.digestProblem(index, chunk));
            if (problem) {
              const r = this.badChunk(index, problem);
              if ('fail' in r) throw new Refused(r.fail.code, r.fail.message);
              throw new Error(problem);
            }
            await this.admit(chunk.length, signal);
            this.stats.chunksReceived++;
            this.stats.chunkBytesReceived += chunk.length;
            this.received.add(index);
            this.stager.add(index, chunk);
            index++;
            if (index < from + count) chunk = Buffer.allocUnsafe(this.chunkBytes(index));
            filled = 0;
          }
        }
        if (this.failure) throw this.failure;
      }
      if (index < from + count) throw new Error(`the response ended after ${index - from} of ${count} chunk(s)`);
    } catch (err) {
      throw ac.signal.aborted && !signal.aborted ? new Error(String((ac.signal.reason as Error)?.message ?? ac.signal.reason), { cause: err }) : err;
    } finally {
      if (idle) this.runtime.clock.clearTimeout(idle);
      signal.removeEventListener('abort', onAbort);
    }
  }

  private checkResponse(res: Response, start: number, end: number): void {
    const whole = start === 0 && end === this.spec.size - 1;
    if (res.status === 200 && whole) return; // a server without Range support, asked for all of it
    if (res.status === 200) throw new Refused('PERCH_ERR_MODEL_DOWNLOAD_FAILED', `the server ignored the Range request (200 for bytes ${start}-${end}); a model url needs Range support`);
    if (res.status !== 206) throw new Error(`HTTP ${res.status} for bytes ${start}-${end}`);
    const m = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(res.headers.get('content-range') ?? '');
    const total = m?.[3] === '*' ? this.spec.size : Number(m?.[3]);
    if (!m || Number(m[1]) !== start || Number(m[2]) !== end || total !== this.spec.size) {
      throw new Refused('PERCH_ERR_MODEL_DOWNLOAD_FAILED', `asked for bytes ${start}-${end} of ${this.spec.size}, the server answered Content-Range '${res.headers.get('content-range') ?? ''}'`);
    }
  }

  /** Waits for the rate cap and for room among the chunks written but not yet durable. */
  private async admit(bytes: number, signal: AbortSignal): Promise<void> {
    const room = this.runtime.cloud.download.windowChunks;
    while (this.stager.unstaged >= room && !this.failure) {
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
    if (this.failure) throw this.failure;
    const waitMs = this.bucket.waitMs(bytes);
    if (waitMs > 0) await this.sleep(waitMs, signal);
    this.bucket.take(bytes);
  }

  protected onStaged(): void {
    this.wake?.();
    this.wake = null;
    if (this.stager.have.size < this.total) this.reportProgress();
  }

  protected onStageFailed(err: PerchError): void {
    this.fail(err);
  }

  private fail(err: Error): void {
    this.failure ??= err;
    this.wake?.();
    this.wake = null;
  }

  private sleep(ms: number, signal: AbortSignal): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const onAbort = (): void => {
        this.runtime.clock.clearTimeout(h);
        reject(signal.reason as Error);
      };
      const h = this.runtime.clock.setTimeout(() => {
        signal.removeEventListener('abort', onAbort);
        resolve();
      }, ms);
      signal.addEventListener('abort', onAbort, { once: true });
    });
  }

}

/** A url for log lines: without user info or query (a presigned URL's signature is a secret). */
export function redact(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}${u.pathname}`;
  } catch {
    return '(invalid url)';
  }
}
