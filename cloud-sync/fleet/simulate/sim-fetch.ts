// How a simulated device fetches a model version (docs/protocol.md section 5): MQTT chunks asked
// for with a sliding window, or HTTP Range when the spec has a `url`. Bytes are hashed as they
// arrive, in order, and dropped: a simulated device keeps no file, so its memory is one window of
// chunks at most (chunks that arrive ahead of the next one are held, up to the window). The
// digest and size are then checked exactly as the device's verify steps do.
import { createHash, type Hash } from 'node:crypto';
import { PerchError } from '../../../runtime/base/errors.js';
import type { ModelSpec, ModelsRequest } from '../../protocol/schemas.js';

export interface FetchLimits {
  windowChunks: number;
  /** Outstanding chunks are asked for again after this long without any arriving. */
  chunkTimeoutMs: number;
  maxRetries: number;
}

/** Receives a model version's MQTT chunks; `request` publishes a models/request. */
export class SimChunkFetch {
  readonly total: number;
  private next = 0;
  private asked = 0;
  private readonly ahead = new Map<number, Buffer>();
  private readonly hash: Hash = createHash('sha256');
  private bytes = 0;
  private retries = 0;
  private timer: NodeJS.Timeout | null = null;
  private settle: { resolve: () => void; reject: (e: Error) => void } | null = null;
  readonly done: Promise<void>;

  constructor(
    readonly name: string,
    readonly spec: ModelSpec,
    private readonly limits: FetchLimits,
    private readonly request: (req: ModelsRequest) => void,
  ) {
    this.total = Math.ceil(spec.size / spec.chunkSize);
    this.done = new Promise<void>((resolve, reject) => (this.settle = { resolve, reject }));
    // The caller awaits `done`; this keeps an early cancel from being an unhandled rejection.
    this.done.catch(() => undefined);
  }

  get staged(): number {
    return this.next;
  }

  start(): void {
    if (this.total === 0) return this.finish(null);
    this.fill();
  }

  /** A chunk arrived on `.../models/{name}/{version}/chunks/{index}`. */
  receive(index: number, data: Buffer): void {
    if (!this.settle || !Number.isInteger(index) || index < this.next || index >= this.total || this.ahead.has(index)) return;
    if (index >= this.next + this.limits.windowChunks) return; // not asked for: ignored, like the agent
    const expected = Math.min(this.spec.chunkSize, this.spec.size - index * this.spec.chunkSize);
    if (data.length !== expected) {
      return this.finish(new PerchError('PERCH_ERR_MODEL_SIZE_MISMATCH', `chunk ${index} is ${data.length} bytes, expected ${expected}`));
    }
    this.ahead.set(index, data);
    for (let c = this.ahead.get(this.next); c; c = this.ahead.get(this.next)) {
      this.ahead.delete(this.next);
      this.hash.update(c);
      this.bytes += c.length;
      this.next++;
    }
    this.retries = 0;
    if (this.next === this.total) return this.finish(verify(this.spec, this.bytes, this.hash.digest('hex')));
    this.fill();
  }

  cancel(): void {
    this.finish(new Error('cancelled'));
  }

  private fill(): void {
    const end = Math.min(this.total, this.next + this.limits.windowChunks);
    if (this.asked < end) {
      const from = Math.max(this.asked, this.next);
      this.request({ name: this.name, version: this.spec.version, from, count: end - from });
      this.asked = end;
    }
    this.arm();
  }

  private arm(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = null;
      if (++this.retries > this.limits.maxRetries) {
        return this.finish(new PerchError('PERCH_ERR_MODEL_DOWNLOAD_FAILED', `${this.total - this.next} chunk(s) never arrived after ${this.limits.maxRetries} re-request(s)`));
      }
      this.asked = this.next; // ask again for everything outstanding
      this.ahead.clear();
      this.fill();
    }, this.limits.chunkTimeoutMs);
    this.timer.unref();
  }

  private finish(err: Error | null): void {
    if (!this.settle) return;
    const s = this.settle;
    this.settle = null;
    if (this.timer) clearTimeout(this.timer);
    this.ahead.clear();
    if (err) s.reject(err);
    else s.resolve();
  }
}

/** Fetches a spec's `url` with one Range request for the whole file, hashing as it streams. */
export async function simHttpFetch(spec: ModelSpec & { url: string }, signal: AbortSignal): Promise<void> {
  const res = await fetch(spec.url, { headers: { range: `bytes=0-${Math.max(0, spec.size - 1)}`, 'accept-encoding': 'identity' }, signal });
  if (res.status !== 206 && res.status !== 200) {
    await res.body?.cancel().catch(() => undefined);
    throw new PerchError('PERCH_ERR_MODEL_DOWNLOAD_FAILED', `HTTP ${res.status} from the model url`);
  }
  const hash = createHash('sha256');
  let bytes = 0;
  for await (const part of (res.body ?? []) as AsyncIterable<Uint8Array>) {
    bytes += part.length;
    if (bytes > spec.size) throw new PerchError('PERCH_ERR_MODEL_SIZE_MISMATCH', `the model url sent more than ${spec.size} bytes`);
    hash.update(part);
  }
  const err = verify(spec, bytes, hash.digest('hex'));
  if (err) throw err;
}

/** The verify-size and verify-digest steps (cloud-sync/agent/model-update/steps.ts). */
function verify(spec: ModelSpec, size: number, sha256: string): PerchError | null {
  if (size !== spec.size) return new PerchError('PERCH_ERR_MODEL_SIZE_MISMATCH', `downloaded ${size} bytes, desired state says ${spec.size}`);
  if (sha256 !== spec.sha256) return new PerchError('PERCH_ERR_MODEL_DIGEST_MISMATCH', `downloaded file has SHA-256 ${sha256}, desired state says ${spec.sha256}`);
  return null;
}
