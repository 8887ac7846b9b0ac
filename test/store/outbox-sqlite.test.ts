// The SQLite outbox runs the abstract suite through PerchStore, plus what only SQLite has (the
// counter in meta, pragmas, a write failure SQLite makes) on its own parts.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { runOutboxSuite } from './abstract/outbox-suite.js';
import { openSqliteParts } from './helpers/sqlite-parts.js';
import { storeHarness } from './helpers/store-harness.js';
import { makeTempDir } from './helpers/temp-dir.js';

runOutboxSuite('SQLite', async ({ clock, limits }) => {
  const h = await storeHarness({ clock, outboxLimits: limits });
  return { outbox: h.store.outbox, reopen: async () => (await h.reopen()).outbox, destroy: () => h.destroy() };
});

void test('SQLite outbox: deleting events writes the seq counter to the meta table in the same transaction', async () => {
  const tmp = await makeTempDir();
  const sqlite = openSqliteParts(tmp.path);
  try {
    const { outbox, db } = sqlite;
    await Promise.all([1, 2, 3].map((i) => outbox.append('t', i)));
    await outbox.ack([1, 2, 3]);
    const row = db.prepare("SELECT value FROM meta WHERE key = 'outbox.last_seq'").get() as { value: number };
    assert.equal(row.value, 3);
    assert.equal(db.prepare('SELECT count(*) FROM outbox').pluck().get(), 0);
  } finally {
    await sqlite.close();
    await tmp.remove();
  }
});

void test('SQLite outbox: a failed group commit rejects every append with a store code and uses no seq', async () => {
  const tmp = await makeTempDir();
  const sqlite = openSqliteParts(tmp.path);
  try {
    const { outbox, db } = sqlite;
    await outbox.append('t', 0);
    // A real SQLite write failure: query_only makes every write fail with SQLITE_READONLY.
    db.pragma('query_only = ON');
    const failed = await Promise.allSettled([1, 2, 3].map((i) => outbox.append('t', i)));
    for (const r of failed) {
      assert.equal(r.status, 'rejected');
      assert.equal((r.reason as { code: string }).code, 'PERCH_ERR_STORE_READONLY');
    }
    assert.equal(outbox.stats().count, 1);
    assert.equal(outbox.stats().lastSeq, 1);
    db.pragma('query_only = OFF');
    const ok = await Promise.all([outbox.append('t', 4), outbox.append('t', 5)]);
    assert.deepEqual(ok.map((r) => r.seq), [2, 3]);
  } finally {
    await sqlite.close();
    await tmp.remove();
  }
});

void test('SQLite outbox: an ack commits without an fsync of its own and leaves synchronous = FULL for everything else', async () => {
  const tmp = await makeTempDir();
  let sqlite = openSqliteParts(tmp.path);
  try {
    const { outbox, db } = sqlite;
    const FULL = 2;
    await Promise.all([1, 2, 3].map((i) => outbox.append('t', i)));
    assert.equal(await outbox.ack([1, 2]), 2);
    assert.equal(db.pragma('synchronous', { simple: true }), FULL);
    // Also when the ack fails.
    db.pragma('query_only = ON');
    await assert.rejects(outbox.ack([3]), { code: 'PERCH_ERR_STORE_READONLY' });
    db.pragma('query_only = OFF');
    assert.equal(db.pragma('synchronous', { simple: true }), FULL);
    // A restart sees the delete (committed, only not fsynced).
    await sqlite.close();
    sqlite = openSqliteParts(tmp.path);
    assert.deepEqual((await sqlite.outbox.claim(10)).map((e) => e.seq), [3]);
  } finally {
    await sqlite.close();
    await tmp.remove();
  }
});
