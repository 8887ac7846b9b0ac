// Batch-sized buffers used again instead of made per batch (docs/benchmarks.md "Batch-sized
// buffers used again"; the mmaps counted: docs/history/benchmarks-notes.md "500 streams on
// 11-24"). npm start and the image run with MALLOC_MMAP_THRESHOLD_=16384
// (docs/reliability.md: what gives the C heap back after a flood), so every ArrayBuffer of 16 KiB
// or more is an mmap when made and a munmap when collected, glibc's arena lock held over the
// mmap; a stream batch of 17 chunks stacked 39 KB of input and 17 KB of state each time.
//
// Whose a buffer is, at every moment (nothing is overwritten while something reads it):
// - in the pool's free list: nobody else's; take() removes it before handing it out;
// - taken: the one stacking that asked, which fills it and hands it to a session thread;
// - on the session thread: moved there (transferred), so on this thread every view of it is
//   detached and reads as empty; only that thread uses it, while its run lasts;
// - back: the thread moves it back with the run's result (worker-protocol.ts), and only then is
//   it given to the pool again. A buffer that does not come back (a failed run, a crashed
//   thread, an executor that does not return buffers) is simply collected.
// Bounded: the free lists hold at most POOL_MAX_BYTES and POOL_MAX_PER_SIZE buffers a size;
// POOL_IDLE_MS after the last take() they are dropped, so an idle device keeps none of them.
import { systemClock, type Clock, type TimerHandle } from '../base/clock.js';
import { allocate, arrayConstructor, type Datatype, type TensorData } from './datatypes.js';

/** Buffers smaller than this are not pooled: they come from the heap, not from mmap. */
export const POOL_MIN_BYTES = 8 * 1024;
/** What the free lists of one pool hold at most. */
export const POOL_MAX_BYTES = 2 * 1024 * 1024;
/** Free buffers kept of one size: a model's batches in flight (sessions x lookahead) and a few. */
export const POOL_MAX_PER_SIZE = 6;
/** Dropped this long after the last take(). */
export const POOL_IDLE_MS = 10_000;

/** Buffers handed out by a pool: moved whole to a session thread though a view covers less. */
const pooled = new WeakSet<ArrayBuffer>();

export function isPooled(buffer: ArrayBufferLike): boolean {
  return pooled.has(buffer as ArrayBuffer);
}

/**
 * The size a request of `bytes` is served at: rounded up to a quarter of its power of two (at
 * most a quarter more than asked), so the batch sizes of a stream (10 to 30 items, say) share a
 * few sizes instead of one each.
 */
export function pooledSize(bytes: number): number {
  const top = 2 ** Math.floor(Math.log2(bytes));
  const step = Math.max(4096, top / 4);
  return Math.ceil(bytes / step) * step;
}

/** A size a pool hands out and keeps (a smaller or other buffer is not worth moving back). */
export function isPoolSize(bytes: number): boolean {
  return bytes >= POOL_MIN_BYTES && pooledSize(bytes) === bytes;
}

export interface PoolStats {
  /** Bytes in the free lists now. */
  freeBytes: number;
  /** take() calls served from a free list, and those that made a new buffer. */
  reused: number;
  made: number;
}

export class BufferPool {
  private readonly free = new Map<number, ArrayBuffer[]>();
  private freeBytes = 0;
  private lastTake = 0;
  private timer: TimerHandle | null = null;
  private reused = 0;
  private made = 0;

  constructor(private readonly clock: Clock = systemClock) {}

  /** A buffer of at least `bytes` (zeroed only when new: the caller writes all it uses). */
  take(bytes: number): ArrayBuffer {
    this.lastTake = this.clock.now();
    if (bytes < POOL_MIN_BYTES) return new ArrayBuffer(bytes);
    const size = pooledSize(bytes);
    const list = this.free.get(size);
    let buffer = list?.pop();
    if (buffer) {
      this.freeBytes -= size;
      this.reused++;
    } else {
      buffer = new ArrayBuffer(size);
      this.made++;
    }
    pooled.add(buffer);
    return buffer;
  }

  /**
   * A buffer back from a session thread, no longer used by anyone. Only a pool size (another
   * buffer is just left to be collected) and only while the bounds allow.
   */
  give(buffer: ArrayBuffer): void {
    const size = buffer.byteLength;
    if (!isPoolSize(size)) return;
    if (this.freeBytes + size > POOL_MAX_BYTES) return;
    let list = this.free.get(size);
    if (!list) this.free.set(size, (list = []));
    if (list.length >= POOL_MAX_PER_SIZE) return;
    list.push(buffer);
    this.freeBytes += size;
    if (!this.timer) this.arm(POOL_IDLE_MS);
  }

  /** An array of `count` elements of `dt` over a taken buffer (BYTES: a plain new array). */
  array(dt: Datatype, count: number): TensorData {
    const ctor = arrayConstructor(dt);
    if (!ctor) return allocate(dt, count);
    return new ctor(this.take(count * ctor.BYTES_PER_ELEMENT), 0, count);
  }

  /** Drops every free buffer (they are collected like any other). */
  clear(): void {
    this.free.clear();
    this.freeBytes = 0;
    if (this.timer) this.clock.clearTimeout(this.timer);
    this.timer = null;
  }

  get stats(): PoolStats {
    return { freeBytes: this.freeBytes, reused: this.reused, made: this.made };
  }

  private idleCheck(): void {
    this.timer = null;
    const idle = this.clock.now() - this.lastTake;
    if (idle >= POOL_IDLE_MS) this.clear();
    else if (this.freeBytes > 0) this.arm(POOL_IDLE_MS - idle);
  }

  private arm(ms: number): void {
    this.timer = this.clock.setTimeout(() => this.idleCheck(), ms);
    // Never what keeps the process alive (a fake clock's handle has no unref).
    (this.timer as { unref?: () => void }).unref?.();
  }
}
