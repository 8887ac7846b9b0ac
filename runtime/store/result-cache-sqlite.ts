// The result cache on SQLite. A hit is one indexed SELECT plus a decode; it does not write.
// Last-use updates (for LRU) and puts are buffered in memory and written together in one
// transaction (write-behind): puts on the next tick, last-use updates at least every
// touchFlushMs. Losing a few of those in a crash only makes the LRU order slightly stale or
// a result be computed again, never a wrong answer.
import type { Database, Statement } from 'better-sqlite3';
import { systemClock, type Clock, type TimerHandle } from '../base/clock.js';
import { silentLogger, type Logger } from '../base/log.js';
import type { Tensor } from '../tensor/tensor.js';
import { decodeTensors, encodeTensors } from './result-cache-codec.js';
import type { CachedResult, CacheLimits, CacheModelStats, CacheStats, ResultCache } from './result-cache.js';
import { toStoreError, type StoreErrorContext } from './store-errors.js';

export interface SqliteResultCacheOptions {
  limits: CacheLimits;
  clock?: Clock;
  logger?: Logger;
  /** False when the store is open read-only: puts are refused up front. */
  writable?: boolean;
  dir?: string;
  /** Set when the store opened degraded: writes fail with this code. */
  degraded?: StoreErrorContext['degraded'];
  /** Longest time a last-use update waits in memory. */
  touchFlushMs?: number;
  /** Last-use updates that trigger a write without waiting. */
  touchFlushCount?: number;
}

interface PendingPut {
  model: string;
  version: number;
  blob: Buffer;
  expiresAt: number;
  lastUsed: number;
}

interface Row {
  model: string;
  version: number;
  outputs: Buffer;
  expires_at: number;
}

interface Gone {
  key?: string;
  model: string;
  version: number;
  bytes: number;
}

const EVICT_BATCH = 64;

export class SqliteResultCache implements ResultCache {
  private readonly clock: Clock;
  private readonly logger: Logger;
  private readonly writable: boolean;
  private readonly errCtx: StoreErrorContext;
  private readonly touchFlushMs: number;
  private readonly touchFlushCount: number;
  private limits: CacheLimits;
  private readonly st: Record<'get' | 'meta' | 'upsert' | 'touch' | 'lru' | 'deleteKey' | 'deleteModel' | 'deleteVersion' | 'deleteExpired', Statement>;
  private readonly perModel = new Map<string, CacheModelStats>();
  private readonly puts = new Map<string, PendingPut>();
  private readonly touches = new Map<string, number>();
  private soon: NodeJS.Immediate | null = null;
  private timer: TimerHandle | null = null;
  /** Logical LRU clock: larger = used more recently. Survives restarts through the last_used column. */
  private tick: number;
  private entries = 0;
  private bytes = 0;
  private expiredCount = 0;
  private writeErrors = 0;
  private closed = false;

  constructor(private readonly db: Database, opts: SqliteResultCacheOptions) {
    this.clock = opts.clock ?? systemClock;
    this.logger = opts.logger ?? silentLogger();
    this.writable = opts.writable ?? true;
    this.errCtx = { dir: opts.dir, degraded: opts.degraded };
    this.touchFlushMs = opts.touchFlushMs ?? 1000;
    this.touchFlushCount = opts.touchFlushCount ?? 1024;
    this.limits = { ...opts.limits };
    this.st = {
      get: db.prepare('SELECT model, version, outputs, expires_at FROM result_cache WHERE key = ?'),
      meta: db.prepare('SELECT model, version, bytes FROM result_cache WHERE key = ?'),
      upsert: db.prepare(
        `INSERT INTO result_cache (key, model, version, outputs, bytes, expires_at, last_used) VALUES (?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (key) DO UPDATE SET model = excluded.model, version = excluded.version, outputs = excluded.outputs,
           bytes = excluded.bytes, expires_at = excluded.expires_at, last_used = excluded.last_used`,
      ),
      touch: db.prepare('UPDATE result_cache SET last_used = ? WHERE key = ?'),
      lru: db.prepare(`SELECT key, model, version, bytes FROM result_cache ORDER BY last_used LIMIT ${EVICT_BATCH}`),
      deleteKey: db.prepare('DELETE FROM result_cache WHERE key = ?'),
      deleteModel: db.prepare('DELETE FROM result_cache WHERE model = ? RETURNING model, version, bytes'),
      deleteVersion: db.prepare('DELETE FROM result_cache WHERE model = ? AND version = ? RETURNING model, version, bytes'),
      deleteExpired: db.prepare('DELETE FROM result_cache WHERE expires_at <= ? RETURNING model, version, bytes'),
    };
    // Once at open: totals per model version and the LRU clock.
    const groups = db.prepare('SELECT model, version, count(*) AS n, sum(bytes) AS b FROM result_cache GROUP BY model, version').all() as Array<{ model: string; version: number; n: number; b: number }>;
    for (const g of groups) {
      const m = this.model(g.model, g.version);
      m.entries = g.n;
      m.bytes = g.b;
      this.entries += g.n;
      this.bytes += g.b;
    }
    this.tick = Number(db.prepare('SELECT coalesce(max(last_used), 0) FROM result_cache').pluck().get());
  }

  get(key: string, model: string, version: number): CachedResult | undefined {
    if (this.closed) return undefined;
    const now = this.clock.wallNow();
    const pending = this.puts.get(key);
    if (pending) {
      if (pending.expiresAt <= now) return this.miss(model, version);
      pending.lastUsed = ++this.tick;
      return this.hit(pending.model, pending.version, pending.blob, pending.expiresAt) ?? this.miss(model, version);
    }
    let row: Row | undefined;
    try {
      row = this.st.get.get(key) as Row | undefined;
    } catch (err) {
      this.logger.warn({ err: toStoreError(err, 'cache get', this.errCtx) }, 'result cache read failed');
      return this.miss(model, version);
    }
    if (!row || row.expires_at <= now) return this.miss(model, version);
    const result = this.hit(row.model, row.version, row.outputs, row.expires_at);
    if (!result) return this.miss(model, version);
    this.touches.set(key, ++this.tick);
    this.scheduleTouches();
    return result;
  }

  put(key: string, model: string, version: number, outputs: readonly Tensor[], ttlSeconds?: number): boolean {
    const ttl = ttlSeconds ?? this.limits.defaultTtlSeconds;
    if (this.closed || !this.writable || ttl <= 0) return false;
    const blob = encodeTensors(outputs);
    if (blob.length > this.limits.maxBytes) return false;
    this.puts.set(key, { model, version, blob, expiresAt: this.clock.wallNow() + ttl * 1000, lastUsed: ++this.tick });
    this.touches.delete(key);
    if (this.soon === null) this.soon = setImmediate(() => this.flush());
    return true;
  }

  flush(): void {
    if (this.soon !== null) {
      clearImmediate(this.soon);
      this.soon = null;
    }
    if (this.timer !== null) {
      this.clock.clearTimeout(this.timer);
      this.timer = null;
    }
    if (this.puts.size === 0 && this.touches.size === 0) return;
    const puts = [...this.puts];
    const touches = [...this.touches];
    this.puts.clear();
    this.touches.clear();
    const added: Gone[] = [];
    const removed: Gone[] = [];
    const evicted: Gone[] = [];
    try {
      this.db.transaction(() => {
        let bytes = this.bytes;
        for (const [key, p] of puts) {
          const old = this.st.meta.get(key) as Gone | undefined;
          if (old) {
            removed.push(old);
            bytes -= old.bytes;
          }
          this.st.upsert.run(key, p.model, p.version, p.blob, p.blob.length, p.expiresAt, p.lastUsed);
          added.push({ model: p.model, version: p.version, bytes: p.blob.length });
          bytes += p.blob.length;
        }
        for (const [key, lastUsed] of touches) this.st.touch.run(lastUsed, key);
        while (bytes > this.limits.maxBytes) {
          const victims = this.st.lru.all() as Array<Gone & { key: string }>;
          if (victims.length === 0) break;
          for (const v of victims) {
            this.st.deleteKey.run(v.key);
            evicted.push(v);
            bytes -= v.bytes;
            if (bytes <= this.limits.maxBytes) break;
          }
        }
      })();
    } catch (err) {
      this.writeErrors++;
      this.logger.warn({ err: toStoreError(err, 'cache write', this.errCtx), puts: puts.length }, 'result cache write failed; entries not kept');
      return;
    }
    for (const a of added) this.account(a, +1);
    for (const r of removed) this.account(r, -1);
    for (const e of evicted) {
      this.account(e, -1);
      this.model(e.model, e.version).evictions++;
    }
  }

  deleteModel(model: string, version?: number): number {
    for (const [key, p] of this.puts) if (p.model === model && (version === undefined || p.version === version)) this.puts.delete(key);
    let gone: Gone[];
    try {
      gone = (version === undefined ? this.st.deleteModel.all(model) : this.st.deleteVersion.all(model, version)) as Gone[];
    } catch (err) {
      throw toStoreError(err, 'cache deleteModel', this.errCtx);
    }
    for (const g of gone) this.account(g, -1);
    return gone.length;
  }

  expire(): number {
    this.flush();
    let gone: Gone[];
    try {
      gone = this.st.deleteExpired.all(this.clock.wallNow()) as Gone[];
    } catch (err) {
      throw toStoreError(err, 'cache expire', this.errCtx);
    }
    for (const g of gone) this.account(g, -1);
    this.expiredCount += gone.length;
    return gone.length;
  }

  setLimits(limits: Partial<CacheLimits>): void {
    this.limits = { ...this.limits, ...limits };
  }

  stats(): CacheStats {
    let hits = 0;
    let misses = 0;
    let evictions = 0;
    const byModel: CacheModelStats[] = [];
    for (const m of this.perModel.values()) {
      hits += m.hits;
      misses += m.misses;
      evictions += m.evictions;
      byModel.push({ ...m });
    }
    return { entries: this.entries, bytes: this.bytes, hits, misses, evictions, expired: this.expiredCount, writeErrors: this.writeErrors, byModel };
  }

  close(): void {
    if (this.closed) return;
    this.flush();
    this.closed = true;
  }

  private hit(model: string, version: number, blob: Buffer, expiresAt: number): CachedResult | undefined {
    let outputs: Tensor[];
    try {
      outputs = decodeTensors(blob);
    } catch (err) {
      this.logger.warn({ err, model, version }, 'unreadable result cache entry ignored');
      return undefined;
    }
    this.model(model, version).hits++;
    return { model, version, outputs, expiresAt };
  }

  private miss(model: string, version: number): undefined {
    this.model(model, version).misses++;
    return undefined;
  }

  private scheduleTouches(): void {
    if (this.touches.size >= this.touchFlushCount) {
      if (this.soon === null) this.soon = setImmediate(() => this.flush());
      return;
    }
    if (this.timer === null) {
      this.timer = this.clock.setTimeout(() => {
        this.timer = null;
        this.flush();
      }, this.touchFlushMs);
    }
  }

  private account(g: Gone, sign: 1 | -1): void {
    const m = this.model(g.model, g.version);
    m.entries += sign;
    m.bytes += sign * g.bytes;
    this.entries += sign;
    this.bytes += sign * g.bytes;
  }

  private model(model: string, version: number): CacheModelStats {
    const id = `${version}\u0000${model}`;
    let m = this.perModel.get(id);
    if (!m) {
      m = { model, version, entries: 0, bytes: 0, hits: 0, misses: 0, evictions: 0 };
      this.perModel.set(id, m);
    }
    return m;
  }
}
