// A real SQLite store in a temp directory, with restart and cleanup, for the abstract suites
// and the SQLite-specific tests.
import type { Clock } from '../../../runtime/base/clock.js';
import { storeConfigSchema, type OutboxLimits, type StoreConfig, type StoreConfigInput } from '../../../runtime/store/config.js';
import type { CacheLimits } from '../../../runtime/store/result-cache.js';
import { openStore, type PerchStore } from '../../../runtime/store/store.js';
import { makeTempDir } from './temp-dir.js';

export interface StoreHarness {
  dir: string;
  config: StoreConfig;
  readonly store: PerchStore;
  /** Closes the store and opens a new one on the same directory. */
  reopen(): Promise<PerchStore>;
  destroy(): Promise<void>;
}

export interface StoreHarnessOptions {
  clock?: Clock;
  config?: StoreConfigInput;
  /** Limits set after the schema (the abstract suites use budgets below the schema's minimums). */
  outboxLimits?: Partial<OutboxLimits>;
  cacheLimits?: CacheLimits;
  dir?: string;
}

export async function storeHarness(opts: StoreHarnessOptions = {}): Promise<StoreHarness> {
  const parsed = storeConfigSchema.parse(opts.config ?? {}); // before the temp dir: a bad config leaks nothing
  const temp = opts.dir === undefined ? await makeTempDir() : null;
  const dir = opts.dir ?? (temp as NonNullable<typeof temp>).path;
  const config: StoreConfig = {
    ...parsed,
    outbox: { ...parsed.outbox, ...opts.outboxLimits },
    cache: { ...parsed.cache, ...opts.cacheLimits },
  };
  const open = () => openStore({ dataDir: dir, config, ...(opts.clock ? { clock: opts.clock } : {}) });
  let store: PerchStore;
  try {
    store = open();
  } catch (err) {
    await temp?.remove();
    throw err;
  }
  return {
    dir,
    config,
    get store() {
      return store;
    },
    async reopen() {
      await store.close();
      store = open();
      return store;
    },
    async destroy() {
      await store.close();
      await temp?.remove();
    },
  };
}
