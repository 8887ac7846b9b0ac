// The `store` fragment of the runtime config (docs/design.md house style 4: strict, defaults inside).
// The runtime mounts it as `store: storeConfigSchema.prefault({})`; docs/store.md explains each
// key at length.
import { validate } from 'node-cron';
import { z } from 'zod';
import { OVERFLOW_STRATEGIES } from './outbox-overflow.js';

// An event type as `emit` accepts it (1-256 chars), or a family: a prefix ending in ".*".
const overflowTypeKey = z
  .string()
  .min(1)
  .max(256)
  .refine((k) => !k.includes('*') || (k.endsWith('.*') && k.length > 2 && !k.slice(0, -1).includes('*')), {
    message: 'an event type, or a family "prefix.*" (a "*" only at the end, after a dot)',
  });

const KiB = 1024;
const MiB = 1024 * KiB;

/** A node-cron expression (5 fields, or 6 with seconds first); rejected at config time, not at start(). */
export const cronSchema = z
  .string()
  .refine((s) => validate(s), { message: 'not a valid cron expression (node-cron syntax: [sec] min hour dom month dow)' });

export const storeConfigSchema = z.strictObject({
  // The one SQLite file inside the data directory; a plain name, never a path.
  fileName: z.string().regex(/^[A-Za-z0-9._-]+$/, 'a file name (letters, digits, . _ -), not a path').default('perch.db'),
  // 'quick' runs PRAGMA quick_check at open so a damaged file is moved aside at start-up instead
  // of failing later mid-request; 'none' skips it (it reads the whole file: seconds on a big SD card db).
  checkOnOpen: z.enum(['quick', 'none']).default('quick'),
  // A file found corrupt at start-up is salvaged (its outbox events, device state and seq counter
  // copied into the fresh one, salvage.ts) for at most this long before it is moved aside; 0 moves it unread.
  salvageTimeoutMs: z.number().int().min(0).max(600_000).default(30_000),
  // How long a write waits for a lock held by another connection (a `sqlite3` shell, a backup).
  busyTimeoutMs: z.number().int().min(0).max(60_000).default(5000),
  outbox: z
    .strictObject({
      // Largest payload (its JSON, in bytes) one event may carry; larger emits get PERCH_ERR_EVENT_TOO_LARGE.
      maxEventBytes: z.number().int().min(64).default(64 * KiB),
      // Events not uploaded after this long are dropped (reason `ttl`): 7 days by default.
      ttlSeconds: z.number().int().min(1).default(7 * 24 * 3600),
      // Byte budget of the backlog (type + payload JSON of every event); `overflow` says what happens over it.
      maxBytes: z.number().int().min(4 * KiB).default(64 * MiB),
      // Over budget, per event type (outbox-overflow.ts): 'refuse' answers PERCH_ERR_STORE_FULL and
      // keeps every acknowledged event; 'drop-oldest' makes room by dropping the oldest events
      // whose own strategy is drop-oldest. The default never drops an acknowledged event.
      overflow: z.enum(OVERFLOW_STRATEGIES).default('refuse'),
      // Exact types ("telemetry") or families ("telemetry.*") with their own strategy.
      overflowByType: z
        .record(overflowTypeKey, z.enum(OVERFLOW_STRATEGIES))
        .refine((r) => Object.keys(r).length <= 256, { message: 'at most 256 types' })
        .default({}),
    })
    .refine((o) => o.maxEventBytes <= o.maxBytes, { message: 'maxEventBytes must not exceed maxBytes', path: ['maxEventBytes'] })
    .prefault({}),
  cache: z
    .strictObject({
      // Byte budget of the result cache (serialized outputs); least recently used entries go first.
      maxBytes: z.number().int().min(0).default(64 * MiB),
      // TTL of an entry when the model's own `cache.ttlSeconds` does not set one.
      defaultTtlSeconds: z.number().int().min(1).default(3600),
    })
    .prefault({}),
  jobs: z
    .strictObject({
      // Deletes expired cache entries (a hit never answers from one anyway; this frees the space).
      cacheExpiry: cronSchema.default('*/5 * * * *'),
      // Applies the outbox TTL and byte budget and reports what it dropped.
      outboxSweep: cronSchema.default('* * * * *'),
      // PRAGMA wal_checkpoint(TRUNCATE): folds the WAL into the db file and shrinks it to zero.
      walCheckpoint: cronSchema.default('*/10 * * * *'),
    })
    .prefault({}),
});

export type StoreConfig = z.output<typeof storeConfigSchema>;
export type StoreConfigInput = z.input<typeof storeConfigSchema>;
export type OutboxLimits = Pick<StoreConfig['outbox'], 'maxEventBytes' | 'ttlSeconds' | 'maxBytes' | 'overflow' | 'overflowByType'>;

/** The defaults, for tools and tests that open a store without a runtime config. */
export function defaultStoreConfig(): StoreConfig {
  return storeConfigSchema.parse({});
}
