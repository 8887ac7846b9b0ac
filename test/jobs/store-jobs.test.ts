import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import { test } from 'node:test';
import { JobScheduler } from '../../runtime/jobs/scheduler.js';
import { STORE_JOB_NAMES, storeJobs } from '../../runtime/jobs/store-jobs.js';
import { cacheKey } from '../../runtime/store/result-cache-key.js';
import { FakeClock } from '../helpers/fake-clock.js';
import { storeHarness } from '../store/helpers/store-harness.js';

const t1 = [{ name: 'x', datatype: 'FP32' as const, shape: [1], data: new Float32Array([1]) }];

void test('store jobs: cache expiry, outbox sweep and WAL checkpoint do their work', async () => {
  const clock = new FakeClock();
  const h = await storeHarness({ clock, config: { outbox: { ttlSeconds: 60 }, cache: { defaultTtlSeconds: 30 } } });
  try {
    const { store } = h;
    const scheduler = new JobScheduler(storeJobs({ cache: store.cache, outbox: store.outbox, checkpoint: () => store.checkpoint(), writable: () => store.writable }, h.config.jobs));
    store.cache.put(cacheKey('m', 1, t1), 'm', 1, t1);
    for (let i = 0; i < 50; i++) await store.outbox.append('t', { i, pad: 'x'.repeat(500) });
    store.cache.flush();
    clock.advance(61_000);

    assert.equal(await scheduler.runNow(STORE_JOB_NAMES.cacheExpiry), true);
    assert.equal(store.cache.stats().entries, 0);
    assert.equal(await scheduler.runNow(STORE_JOB_NAMES.outboxSweep), true);
    assert.equal(store.outbox.stats().count, 0);
    assert.equal(store.outbox.stats().dropped.ttl, 50);

    const wal = `${store.file}-wal`;
    assert.ok(statSync(wal).size > 0);
    assert.equal(await scheduler.runNow(STORE_JOB_NAMES.walCheckpoint), true);
    assert.equal(statSync(wal).size, 0, 'TRUNCATE leaves an empty -wal');
  } finally {
    await h.destroy();
  }
});

void test('store jobs: a failing cache expiry does not keep the outbox sweep or the checkpoint from running', async () => {
  const clock = new FakeClock();
  const h = await storeHarness({ clock, config: { outbox: { ttlSeconds: 60 } } });
  try {
    const { store } = h;
    const brokenCache = Object.assign(Object.create(store.cache) as typeof store.cache, {
      expire: () => {
        throw new Error('cache broke');
      },
    });
    const scheduler = new JobScheduler(storeJobs({ cache: brokenCache, outbox: store.outbox, checkpoint: () => store.checkpoint(), writable: () => store.writable }, h.config.jobs));
    await store.outbox.append('t', 1);
    clock.advance(61_000);
    const results = await Promise.all(Object.values(STORE_JOB_NAMES).map((n) => scheduler.runNow(n)));
    assert.deepEqual(results, [false, true, true]);
    assert.equal(store.outbox.stats().count, 0);
  } finally {
    await h.destroy();
  }
});
