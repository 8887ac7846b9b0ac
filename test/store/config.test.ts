import assert from 'node:assert/strict';
import { test } from 'node:test';
import { z } from 'zod';
import { defaultStoreConfig, storeConfigSchema } from '../../runtime/store/config.js';

void test('store config: every key has a default, also when nested objects are absent', () => {
  const c = defaultStoreConfig();
  assert.equal(c.fileName, 'perch.db');
  assert.equal(c.checkOnOpen, 'quick');
  assert.equal(c.outbox.overflow, 'refuse', 'the default never drops an acknowledged event');
  assert.deepEqual(c.outbox.overflowByType, {});
  assert.equal(c.outbox.maxEventBytes, 64 * 1024);
  assert.equal(c.cache.defaultTtlSeconds, 3600);
  assert.equal(c.jobs.walCheckpoint, '*/10 * * * *');
  assert.deepEqual(storeConfigSchema.parse({ outbox: { ttlSeconds: 60 } }).outbox, { ...c.outbox, ttlSeconds: 60 });
});

void test('store config: mounted with .prefault({}) in a parent schema, an absent `store` gets every default', () => {
  const parent = z.strictObject({ store: storeConfigSchema.prefault({}) });
  assert.deepEqual(parent.parse({}).store, defaultStoreConfig());
});

void test('store config: unknown keys, bad values and invalid cron expressions are all reported at once', () => {
  const r = storeConfigSchema.safeParse({
    extra: 1,
    fileName: '../escape.db',
    outbox: { maxBytes: 10, overflow: 'drop-newest', typo: true },
    jobs: { cacheExpiry: 'every minute', walCheckpoint: '61 * * * *', outboxSweep: '*/30 * * * * *' },
  });
  assert.equal(r.success, false);
  const paths = r.error.issues.map((i) => i.path.join('.') || i.code).sort();
  for (const expected of ['fileName', 'jobs.cacheExpiry', 'jobs.walCheckpoint', 'outbox.maxBytes', 'outbox.overflow']) {
    assert.ok(paths.includes(expected), `${expected} not reported: ${paths.join(', ')}`);
  }
  assert.ok(r.error.issues.some((i) => i.code === 'unrecognized_keys'));
  assert.ok(!paths.includes('jobs.outboxSweep'), 'a 6-field (seconds) cron expression is valid');
});

void test('store config: maxEventBytes may not exceed the outbox budget', () => {
  const r = storeConfigSchema.safeParse({ outbox: { maxBytes: 8192, maxEventBytes: 10_000 } });
  assert.equal(r.success, false);
  assert.deepEqual(r.error.issues[0]?.path, ['outbox', 'maxEventBytes']);
});

void test('store config: overflowByType takes event types and "prefix.*" families, and rejects other patterns', () => {
  const ok = storeConfigSchema.parse({ outbox: { overflow: 'drop-oldest', overflowByType: { alarm: 'refuse', 'telemetry.*': 'drop-oldest', 'a.b.*': 'refuse' } } });
  assert.deepEqual(ok.outbox.overflowByType, { alarm: 'refuse', 'telemetry.*': 'drop-oldest', 'a.b.*': 'refuse' });
  for (const key of ['*', '.*', 'tele*', 'a.*.b', '*.x', 'x'.repeat(257), '']) {
    const r = storeConfigSchema.safeParse({ outbox: { overflowByType: { [key]: 'refuse' } } });
    assert.equal(r.success, false, `key ${JSON.stringify(key)} accepted`);
    assert.deepEqual(r.error.issues[0]?.path.slice(0, 2), ['outbox', 'overflowByType']);
  }
  assert.equal(storeConfigSchema.safeParse({ outbox: { overflowByType: { t: 'drop-newest' } } }).success, false);
  const many = Object.fromEntries(Array.from({ length: 257 }, (_, i) => [`t${i}`, 'refuse']));
  assert.equal(storeConfigSchema.safeParse({ outbox: { overflowByType: many } }).success, false);
});
