// The store's maintenance jobs, built from the `store.jobs` config: cache expiry, outbox
// retention sweep, WAL checkpoint. Each returns quickly; what they did goes to the debug log
// (outbox drops also reach the outbox's drop listeners, which record them as an event).
import type { Logger } from '../base/log.js';
import { silentLogger } from '../base/log.js';
import type { CheckpointResult } from '../store/checkpoint.js';
import type { StoreConfig } from '../store/config.js';
import type { Outbox } from '../store/outbox.js';
import type { ResultCache } from '../store/result-cache.js';
import type { Job } from './job.js';

export const STORE_JOB_NAMES = { cacheExpiry: 'cache-expiry', outboxSweep: 'outbox-sweep', walCheckpoint: 'wal-checkpoint' } as const;

export interface StoreJobParts {
  cache: ResultCache;
  outbox: Outbox;
  /** Returns null when there is nothing to checkpoint (read-only store). */
  checkpoint: () => CheckpointResult | null;
  /** False for a store that opened read-only: nothing can be expired or swept, so nothing is tried. */
  writable: () => boolean;
}

export function storeJobs(parts: StoreJobParts, schedules: StoreConfig['jobs'], logger: Logger = silentLogger()): Job[] {
  return [
    {
      name: STORE_JOB_NAMES.cacheExpiry,
      schedule: schedules.cacheExpiry,
      run() {
        if (!parts.writable()) return;
        const expired = parts.cache.expire();
        if (expired > 0) logger.debug({ expired }, 'cache entries expired');
      },
    },
    {
      name: STORE_JOB_NAMES.outboxSweep,
      schedule: schedules.outboxSweep,
      async run() {
        if (!parts.writable()) return;
        const dropped = await parts.outbox.sweep();
        if (dropped.ttl + dropped.overflow > 0) logger.debug(dropped, 'outbox sweep dropped events');
      },
    },
    {
      name: STORE_JOB_NAMES.walCheckpoint,
      schedule: schedules.walCheckpoint,
      run() {
        const r = parts.checkpoint();
        if (r) logger.debug(r, 'wal checkpoint');
      },
    },
  ];
}
