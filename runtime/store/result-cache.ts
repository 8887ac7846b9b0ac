// The result cache interface. A hit answers a request without touching the scheduler; entries
// survive restarts; the key (result-cache-key.ts) includes the model version, so a new version
// never answers from an old version's entries. test/store/abstract/result-cache-suite.ts checks
// any implementation of it.
//
// Best effort by nature: get() and put() never throw. A store failure makes get() a miss and put()
// a no-op (logged), so a read-only or full disk slows inference down but never fails it.
import type { Tensor } from '../tensor/tensor.js';

export interface CachedResult {
  model: string;
  version: number;
  /** A fresh copy each time; the caller may keep or change it. */
  outputs: Tensor[];
  /** Wall-clock epoch ms. */
  expiresAt: number;
}

export interface CacheModelStats {
  model: string;
  version: number;
  entries: number;
  bytes: number;
  hits: number;
  misses: number;
  evictions: number;
}

export interface CacheStats {
  /** Entries stored (written ones; a put is written on the next tick, see flush()). */
  entries: number;
  /** Sum of their serialized output sizes, what the byte budget counts. */
  bytes: number;
  hits: number;
  misses: number;
  /** Entries removed by the byte budget (least recently used first). */
  evictions: number;
  /** Entries removed by expire() because their TTL ran out. */
  expired: number;
  /** Writes that failed (read-only or full store); their entries were not kept. */
  writeErrors: number;
  byModel: CacheModelStats[];
}

export interface CacheLimits {
  maxBytes: number;
  defaultTtlSeconds: number;
}

export interface ResultCache {
  /** The cached outputs, or undefined (miss, expired). Counts a hit or a miss for model/version; a hit makes the entry most recently used. */
  get(key: string, model: string, version: number): CachedResult | undefined;
  /**
   * Stores outputs under key for ttlSeconds (default: the configured one). Visible to get() at
   * once; written to disk on the next tick together with every other put of that tick. Returns
   * false when the entry is not kept: TTL <= 0, larger than the whole budget, store read-only or closed.
   */
  put(key: string, model: string, version: number, outputs: readonly Tensor[], ttlSeconds?: number): boolean;
  /** Deletes every entry of the model (of one version when given); returns how many. Throws PERCH_ERR_STORE_*. */
  deleteModel(model: string, version?: number): number;
  /** Deletes expired entries; returns how many. Throws PERCH_ERR_STORE_* (the expiry job logs it). */
  expire(): number;
  /** Writes pending puts and last-use updates now. */
  flush(): void;
  setLimits(limits: Partial<CacheLimits>): void;
  stats(): CacheStats;
  /** Flushes, then answers every get with a miss and refuses puts. */
  close(): void;
}
