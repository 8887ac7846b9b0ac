// A read-only or full data directory: clear PERCH_ERR_STORE_* errors from writes, reads keep working.
//
// Tests run as root, which ignores file modes, so chmod cannot make a directory read-only. Where
// `mount` is allowed (root with CAP_SYS_ADMIN) the tests use a real tmpfs: remounted read-only,
// or filled up with a ballast file. CI containers usually cannot mount; those tests are then
// skipped, and the SQLite-level tests below still run everywhere: opening the file read-only
// (SQLITE_READONLY), `PRAGMA query_only` on an open store, and `PRAGMA max_page_count`, which
// makes SQLite fail with SQLITE_FULL exactly as a full disk does.
import assert from 'node:assert/strict';
import { chmodSync, rmSync, statfsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { PerchError } from '../../runtime/base/errors.js';
import { storeErrorCode } from '../../runtime/store/store-errors.js';
import { cacheKey } from '../../runtime/store/result-cache-key.js';
import { openStore, type PerchStore } from '../../runtime/store/store.js';
import type { Tensor } from '../../runtime/tensor/tensor.js';
import { openSqliteParts } from './helpers/sqlite-parts.js';
import { makeTempDir } from './helpers/temp-dir.js';
import { tryMountTmpfs, type TmpfsMount } from './helpers/tmpfs.js';

const inputs: Tensor[] = [{ name: 'x', datatype: 'FP32', shape: [2], data: new Float32Array([1, 2]) }];
const outputs: Tensor[] = [{ name: 'y', datatype: 'FP32', shape: [2], data: new Float32Array([3, 4]) }];
const KEY = cacheKey('m', 1, inputs);
const isCode = (code: string) => (err: unknown) => err instanceof PerchError && err.code === code;

async function populate(dataDir: string): Promise<void> {
  const s = openStore({ dataDir });
  for (let i = 0; i < 3; i++) await s.outbox.append('before', { i });
  s.state.set('models.versions', { m: 1 });
  s.cache.put(KEY, 'm', 1, outputs);
  await s.close();
}

/** Reads answer, writes fail with the code; the same checks for every read-only variant. */
async function assertReadOnly(store: PerchStore): Promise<void> {
  assert.equal(store.outbox.stats().count, 3);
  assert.deepEqual((await store.outbox.claim(10)).map((e) => e.seq), [1, 2, 3]);
  assert.deepEqual(store.state.get('models.versions'), { m: 1 });
  assert.deepEqual(Array.from(store.cache.get(KEY, 'm', 1)?.outputs[0]?.data as Float32Array), [3, 4]);
  await assert.rejects(store.outbox.append('after', {}), isCode('PERCH_ERR_STORE_READONLY'));
  await assert.rejects(store.outbox.ack([1]), isCode('PERCH_ERR_STORE_READONLY'));
  assert.throws(() => store.state.set('k', 1), isCode('PERCH_ERR_STORE_READONLY'));
  assert.equal(store.cache.put(cacheKey('m', 1, outputs), 'm', 1, outputs), false);
  assert.equal(store.checkpoint(), null);
  // Still usable for reads after the failures.
  assert.equal(store.outbox.stats().count, 3);
  assert.equal(store.outbox.stats().lastSeq, 3);
}

void describe('read-only store (SQLite level, runs everywhere)', () => {
  void test('opened read-only: reads work, every write fails with PERCH_ERR_STORE_READONLY', async () => {
    const tmp = await makeTempDir();
    try {
      await populate(tmp.path);
      const store = openStore({ dataDir: tmp.path, readOnly: true });
      try {
        assert.equal(store.writable, false);
        await assertReadOnly(store);
      } finally {
        await store.close();
      }
    } finally {
      await tmp.remove();
    }
  });

  void test('a store that turns read-only while open fails writes with the code and recovers when it can write again', async () => {
    const tmp = await makeTempDir();
    const store = openSqliteParts(tmp.path);
    try {
      await store.outbox.append('a', 1);
      store.db.pragma('query_only = ON'); // what SQLite does on a file it may no longer write
      await assert.rejects(store.outbox.append('b', 2), isCode('PERCH_ERR_STORE_READONLY'));
      assert.throws(() => store.state.set('k', 1), isCode('PERCH_ERR_STORE_READONLY'));
      store.cache.put(KEY, 'm', 1, outputs);
      store.cache.flush();
      assert.equal(store.cache.stats().writeErrors, 1);
      assert.equal(store.cache.get(KEY, 'm', 1), undefined, 'an unwritten entry is not served');
      assert.equal(store.outbox.stats().count, 1);
      store.db.pragma('query_only = OFF');
      assert.equal((await store.outbox.append('c', 3)).seq, 2);
    } finally {
      await store.close();
      await tmp.remove();
    }
  });
});

void describe('read-only by file modes (non-root only: root ignores modes)', () => {
  void test('a data directory and file without write permission: the store opens degraded and serves reads', async (t) => {
    if (process.getuid?.() === 0) {
      t.skip('running as root, which ignores file modes; the tmpfs and SQLite-level tests cover this');
      return;
    }
    const tmp = await makeTempDir();
    try {
      await populate(tmp.path);
      chmodSync(tmp.join('perch.db'), 0o400);
      chmodSync(tmp.path, 0o500);
      const store = openStore({ dataDir: tmp.path });
      try {
        assert.equal(store.writable, false);
        assert.equal(store.incidents[0]?.code, 'PERCH_ERR_STORE_READONLY');
        await assertReadOnly(store);
      } finally {
        await store.close();
      }
    } finally {
      chmodSync(tmp.path, 0o700);
      await tmp.remove();
    }
  });
});

void describe('full store (SQLite level, runs everywhere)', () => {
  void test('SQLITE_FULL (max_page_count) fails appends with PERCH_ERR_STORE_FULL; reads work; seqs stay contiguous after space returns', async () => {
    const tmp = await makeTempDir();
    const store = openSqliteParts(tmp.path);
    try {
      const { db, outbox } = store;
      const pages = Number(db.pragma('page_count', { simple: true }));
      db.pragma(`max_page_count = ${pages + 8}`);
      const big = 'x'.repeat(3000);
      let acked = 0;
      let failure: unknown;
      for (let i = 0; i < 200 && failure === undefined; i++) {
        try {
          await outbox.append('fill', big);
          acked++;
        } catch (err) {
          failure = err;
        }
      }
      assert.ok(acked > 0, 'nothing fit');
      assert.ok(isCode('PERCH_ERR_STORE_FULL')(failure), `expected PERCH_ERR_STORE_FULL, got ${String(failure)}`);
      await assert.rejects(outbox.append('fill', big), isCode('PERCH_ERR_STORE_FULL'));
      assert.equal(outbox.stats().count, acked);
      assert.equal((await outbox.claim(1000)).length, acked);
      db.pragma('max_page_count = 1073741823');
      assert.equal((await outbox.append('after', 1)).seq, acked + 1);
      assert.equal(db.pragma('integrity_check', { simple: true }), 'ok');
    } finally {
      await store.close();
      await tmp.remove();
    }
  });
});

void describe('real file systems (tmpfs; needs mount privileges)', () => {
  let mount: TmpfsMount | null = null;
  before(async () => {
    mount = await tryMountTmpfs(4 * 1024 * 1024);
  });
  after(() => mount?.unmount());
  const skip = (t: { skip(msg: string): void }) => {
    if (mount) return false;
    t.skip('mount is not permitted here (needs CAP_SYS_ADMIN); the SQLite-level tests above cover the codes');
    return true;
  };

  void test('data directory on a file system remounted read-only: the store opens degraded and serves reads', async (t) => {
    if (skip(t) || !mount) return;
    const dataDir = join(mount.path, 'ro');
    await populate(dataDir);
    mount.remount('ro');
    try {
      const store = openStore({ dataDir });
      try {
        assert.equal(store.writable, false);
        assert.equal(store.incidents[0]?.kind, 'read-only');
        assert.equal(store.incidents[0]?.code, 'PERCH_ERR_STORE_READONLY');
        await assertReadOnly(store);
        assert.equal(storeErrorCode(Object.assign(new Error('io'), { code: 'SQLITE_IOERR_WRITE' }), dataDir), 'PERCH_ERR_STORE_READONLY');
      } finally {
        await store.close();
      }
      const fresh = openStore({ dataDir: join(mount.path, 'never-created') });
      try {
        assert.equal(fresh.writable, false);
        assert.equal(fresh.outbox.stats().count, 0);
        await assert.rejects(fresh.outbox.append('x', 1), isCode('PERCH_ERR_STORE_READONLY'));
      } finally {
        await fresh.close();
      }
    } finally {
      mount.remount('rw');
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  void test('a full disk fails appends with PERCH_ERR_STORE_FULL; reads work; appends resume with the next seq when space returns', async (t) => {
    if (skip(t) || !mount) return;
    const dataDir = join(mount.path, 'full');
    const ballast = join(mount.path, 'ballast');
    const store = openStore({ dataDir });
    try {
      store.state.set('k', { v: 1 });
      await store.outbox.append('first', 1);
      const fs = statfsSync(mount.path);
      writeFileSync(ballast, Buffer.alloc(Math.max(0, fs.bavail * fs.bsize - 256 * 1024)));
      let acked = 1;
      let failure: unknown;
      for (let i = 0; i < 500 && failure === undefined; i++) {
        try {
          await store.outbox.append('fill', 'x'.repeat(4000));
          acked++;
        } catch (err) {
          failure = err;
        }
      }
      assert.ok(isCode('PERCH_ERR_STORE_FULL')(failure), `expected PERCH_ERR_STORE_FULL, got ${String(failure)}`);
      assert.equal(store.outbox.stats().count, acked);
      assert.deepEqual(store.state.get('k'), { v: 1 });
      assert.equal((await store.outbox.claim(1000)).length, acked);
      rmSync(ballast);
      assert.equal((await store.outbox.append('after', 1)).seq, acked + 1);
      assert.equal(store.integrityCheck(), 'ok');
    } finally {
      await store.close();
      rmSync(ballast, { force: true });
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  void test('a disk already full at start-up: the store opens degraded with a `full` incident', async (t) => {
    if (skip(t) || !mount) return;
    const dataDir = join(mount.path, 'full-at-start');
    const ballast = join(mount.path, 'ballast2');
    const fs = statfsSync(mount.path);
    writeFileSync(ballast, Buffer.alloc(fs.bavail * fs.bsize));
    try {
      const store = openStore({ dataDir });
      try {
        assert.equal(store.writable, false);
        assert.equal(store.incidents[0]?.kind, 'full');
        assert.equal(store.incidents[0]?.code, 'PERCH_ERR_STORE_FULL');
        await assert.rejects(store.outbox.append('x', 1), isCode('PERCH_ERR_STORE_FULL'));
        assert.throws(() => store.state.set('k', 1), isCode('PERCH_ERR_STORE_FULL'));
      } finally {
        await store.close();
      }
    } finally {
      rmSync(ballast, { force: true });
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
