// The SQLite result cache runs the abstract suite, plus its write-behind behaviour.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { cacheKey } from '../../runtime/store/result-cache-key.js';
import { runResultCacheSuite } from './abstract/result-cache-suite.js';
import { FakeClock } from '../helpers/fake-clock.js';
import { openSqliteParts } from './helpers/sqlite-parts.js';
import { storeHarness } from './helpers/store-harness.js';
import { makeTempDir } from './helpers/temp-dir.js';

runResultCacheSuite('SQLite', async ({ clock, limits }) => {
  const h = await storeHarness({ clock, cacheLimits: limits });
  return { cache: h.store.cache, reopen: async () => (await h.reopen()).cache, destroy: () => h.destroy() };
});

const inputs = (n: number) => [{ name: 'x', datatype: 'INT32' as const, shape: [1], data: new Int32Array([n]) }];
const outputs = [{ name: 'y', datatype: 'FP32' as const, shape: [2], data: new Float32Array([0.25, 0.75]) }];

void test('SQLite cache: a hit does not write; last-use updates are written together after touchFlushMs', async () => {
  const clock = new FakeClock();
  const tmp = await makeTempDir();
  const sqlite = openSqliteParts(tmp.path, { clock });
  try {
    const { cache, db } = sqlite;
    const keys = [1, 2, 3].map((i) => cacheKey('m', 1, inputs(i)));
    for (const k of keys) cache.put(k, 'm', 1, outputs);
    cache.flush();
    const lastUsed = () => db.prepare('SELECT last_used FROM result_cache ORDER BY key').pluck().all() as number[];
    const before = lastUsed();
    const changes = db.prepare('SELECT total_changes()').pluck();
    const written = changes.get();
    for (let i = 0; i < 50; i++) for (const k of keys) assert.ok(cache.get(k, 'm', 1));
    assert.equal(changes.get(), written, 'hits wrote to the database');
    assert.deepEqual(lastUsed(), before);
    clock.advance(1000);
    assert.notDeepEqual(lastUsed(), before);
    assert.equal(clock.pending, 0);
  } finally {
    await sqlite.close();
    await tmp.remove();
  }
});

void test('SQLite cache: puts made in one tick are written in one transaction on the next', async () => {
  const h = await storeHarness();
  try {
    const { cache } = h.store;
    for (let i = 0; i < 20; i++) cache.put(cacheKey('m', 1, inputs(i)), 'm', 1, outputs);
    assert.equal(cache.stats().entries, 0, 'not written yet');
    await new Promise<void>((resolve) => setImmediate(resolve));
    assert.equal(cache.stats().entries, 20);
  } finally {
    await h.destroy();
  }
});

void test('SQLite cache: an unreadable entry is a miss, not an error', async () => {
  const tmp = await makeTempDir();
  const sqlite = openSqliteParts(tmp.path);
  try {
    const { cache, db } = sqlite;
    const key = cacheKey('m', 1, inputs(1));
    cache.put(key, 'm', 1, outputs);
    cache.flush();
    db.prepare('UPDATE result_cache SET outputs = ? WHERE key = ?').run(Buffer.from('garbage'), key);
    assert.equal(cache.get(key, 'm', 1), undefined);
    assert.equal(cache.stats().misses, 1);
  } finally {
    await sqlite.close();
    await tmp.remove();
  }
});
