// Opening the database: file modes, pragmas, migrations, corrupt files, error mapping.
import Database from 'better-sqlite3';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync, openSync, writeSync, closeSync, mkdirSync } from 'node:fs';
import { describe, test } from 'node:test';
import { PerchError } from '../../runtime/base/errors.js';
import { openDatabase } from '../../runtime/store/database.js';
import { migrate, MIGRATIONS, SCHEMA_VERSION, type Migration } from '../../runtime/store/migrations.js';
import { applyReadOnlyPragmas, PAGE_CACHE_KIB } from '../../runtime/store/pragmas.js';
import { isCorruptionError, storeErrorCode, toStoreError } from '../../runtime/store/store-errors.js';
import { openStore } from '../../runtime/store/store.js';
import { FakeClock } from '../helpers/fake-clock.js';
import { makeTempDir } from './helpers/temp-dir.js';

const mode = (p: string) => statSync(p).mode & 0o777;

void describe('openDatabase', () => {
  void test('creates the data dir 0700 and the db, -wal and -shm files 0600', async () => {
    const tmp = await makeTempDir();
    const dataDir = tmp.join('nested', 'data');
    const store = openStore({ dataDir });
    try {
      await store.outbox.append('t', 1); // the WAL has a frame now
      assert.equal(mode(dataDir), 0o700);
      for (const f of ['perch.db', 'perch.db-wal', 'perch.db-shm']) {
        assert.ok(existsSync(tmp.join('nested', 'data', f)), `${f} missing`);
        assert.equal(mode(tmp.join('nested', 'data', f)), 0o600, `${f} mode`);
      }
    } finally {
      await store.close();
      await tmp.remove();
    }
  });

  void test('narrows the mode of an existing, too open database file to 0600', async () => {
    const tmp = await makeTempDir();
    writeFileSync(tmp.join('perch.db'), '', { mode: 0o644 });
    const store = openStore({ dataDir: tmp.path });
    try {
      assert.equal(mode(tmp.join('perch.db')), 0o600);
    } finally {
      await store.close();
      await tmp.remove();
    }
  });

  void test('sets WAL, synchronous=FULL, foreign keys and the busy timeout', async () => {
    const tmp = await makeTempDir();
    const { db } = openDatabase({ dataDir: tmp.path, fileName: 'x.db', busyTimeoutMs: 1234 });
    try {
      assert.equal(db.pragma('journal_mode', { simple: true }), 'wal');
      assert.equal(db.pragma('synchronous', { simple: true }), 2); // 2 = FULL
      assert.equal(db.pragma('foreign_keys', { simple: true }), 1);
      assert.equal(db.pragma('busy_timeout', { simple: true }), 1234);
      assert.equal(db.pragma('user_version', { simple: true }), SCHEMA_VERSION);
    } finally {
      db.close();
      await tmp.remove();
    }
  });

  void test("bounds SQLite's page cache at SQLite's own 2,000 KiB, not better-sqlite3's 16,000, read-write and read-only", async () => {
    // docs/reliability.md "The soak's step": with 16 MB, glibc's heap grew with an outbox that
    // was never uploaded, by about its size, until the bound.
    const plain = new Database(':memory:');
    assert.equal(plain.pragma('cache_size', { simple: true }), -16000, 'better-sqlite3 compiles in 16,000 KiB');
    plain.close();
    assert.equal(PAGE_CACHE_KIB, 2000);
    const tmp = await makeTempDir();
    const { db } = openDatabase({ dataDir: tmp.path, fileName: 'x.db', busyTimeoutMs: 1000 });
    const readOnly = new Database(':memory:');
    try {
      assert.equal(db.pragma('cache_size', { simple: true }), -PAGE_CACHE_KIB);
      applyReadOnlyPragmas(readOnly, { busyTimeoutMs: 1000 });
      assert.equal(readOnly.pragma('cache_size', { simple: true }), -PAGE_CACHE_KIB);
    } finally {
      readOnly.close();
      db.close();
      await tmp.remove();
    }
  });

  void test('migrates once: a second open finds the current schema version', async () => {
    const tmp = await makeTempDir();
    try {
      const first = openDatabase({ dataDir: tmp.path, fileName: 'x.db' });
      assert.equal(first.schemaVersionFound, 0);
      first.db.close();
      const second = openDatabase({ dataDir: tmp.path, fileName: 'x.db' });
      assert.equal(second.schemaVersionFound, SCHEMA_VERSION);
      assert.deepEqual(second.incidents, []);
      second.db.close();
    } finally {
      await tmp.remove();
    }
  });

  void test('a migration that fails leaves the previous version and none of its changes', () => {
    const db = new Database(':memory:');
    const broken: Migration[] = [
      ...MIGRATIONS,
      {
        version: MIGRATIONS.length + 1,
        name: 'broken',
        up(d) {
          d.exec('CREATE TABLE half_done (x INTEGER)');
          throw new Error('boom');
        },
      },
    ];
    assert.throws(() => migrate(db, broken), /boom/);
    assert.equal(db.pragma('user_version', { simple: true }), MIGRATIONS.length);
    assert.equal(db.prepare("SELECT count(*) FROM sqlite_master WHERE name = 'half_done'").pluck().get(), 0);
    db.close();
  });

  void test('a database from a newer Perch is refused, not touched', async () => {
    const tmp = await makeTempDir();
    try {
      const raw = new Database(tmp.join('perch.db'));
      raw.pragma(`user_version = ${SCHEMA_VERSION + 1}`);
      raw.close();
      assert.throws(() => openStore({ dataDir: tmp.path }), (err: unknown) => err instanceof PerchError && err.code === 'PERCH_ERR_STORE_UNAVAILABLE' && /newer/.test(err.message));
      assert.ok(!readdirSync(tmp.path).some((f) => f.includes('corrupt')));
    } finally {
      await tmp.remove();
    }
  });
});

void describe('corrupt database file', () => {
  void test('a file that is not a database is moved aside, a fresh one is created, the incident is returned', async () => {
    const tmp = await makeTempDir();
    const clock = new FakeClock(1_700_000_000_000);
    const garbage = Buffer.from('this is not an SQLite database, it is a log file that landed here\n'.repeat(200));
    writeFileSync(tmp.join('perch.db'), garbage);
    writeFileSync(tmp.join('perch.db-wal'), 'stale wal');
    const store = openStore({ dataDir: tmp.path, clock });
    try {
      assert.equal(store.writable, true);
      assert.equal(store.incidents.length, 1);
      const incident = store.incidents[0];
      assert.equal(incident?.kind, 'corrupt');
      assert.equal(incident?.code, 'PERCH_ERR_STORE_CORRUPT');
      assert.equal(incident?.movedTo, tmp.join('perch.db.corrupt-1700000000000'));
      assert.equal(incident?.at, 1_700_000_000_000);
      assert.deepEqual(readFileSync(tmp.join('perch.db.corrupt-1700000000000')), garbage);
      assert.equal(readFileSync(tmp.join('perch.db.corrupt-1700000000000-wal'), 'utf8'), 'stale wal');
      assert.equal(incident?.salvaged, 0);
      // Nothing says which seqs the fleet already holds from this device: they start past the clock in ms.
      assert.equal(incident?.counter, 'estimated');
      assert.equal((await store.outbox.append('store.corrupt', incident)).seq, 1_700_000_000_001);
    } finally {
      await store.close();
      await tmp.remove();
    }
  });

  void test('a malformed database (damaged pages, valid header) is found by quick_check, salvaged and moved aside', async () => {
    const tmp = await makeTempDir();
    try {
      const first = openStore({ dataDir: tmp.path });
      for (let i = 0; i < 300; i++) first.state.set(`k${i}`, { i, pad: 'x'.repeat(200) });
      await first.close();
      const file = tmp.join('perch.db');
      const size = statSync(file).size;
      assert.ok(size > 8 * 4096);
      // Overwrite pages 3 to 6 (b-tree pages of the tables) with noise; page 1 (header, schema) stays intact.
      const fd = openSync(file, 'r+');
      writeSync(fd, Buffer.alloc(4 * 4096, 0xa5), 0, 4 * 4096, 2 * 4096);
      closeSync(fd);
      const store = openStore({ dataDir: tmp.path });
      try {
        assert.equal(store.incidents[0]?.kind, 'corrupt');
        assert.ok(store.incidents[0]?.movedTo && existsSync(store.incidents[0].movedTo));
        // The pages overwritten are the other tables' roots: the documents are salvaged, each whole (test/store/salvage.test.ts).
        const keys = store.state.keys();
        assert.ok(keys.length > 0, String(keys.length));
        for (const k of keys) assert.deepEqual(store.state.get(k), { i: Number(k.slice(1)), pad: 'x'.repeat(200) });
        assert.equal(store.integrityCheck(), 'ok');
      } finally {
        await store.close();
      }
    } finally {
      await tmp.remove();
    }
  });

  void test("two incidents in the same millisecond do not overwrite each other's copy", async () => {
    const tmp = await makeTempDir();
    const clock = new FakeClock(5);
    try {
      for (let i = 0; i < 2; i++) {
        writeFileSync(tmp.join('perch.db'), `garbage ${i}`.repeat(100));
        const s = openStore({ dataDir: tmp.path, clock });
        await s.close();
      }
      assert.deepEqual(readdirSync(tmp.path).filter((f) => f.includes('corrupt')).sort(), ['perch.db.corrupt-5', 'perch.db.corrupt-5-1']);
    } finally {
      await tmp.remove();
    }
  });
});

void describe('store error mapping', () => {
  const err = (code: string) => Object.assign(new Error(code), { code });

  void test('maps SQLite and file system codes to the store codes', () => {
    const cases: Array<[string, string]> = [
      ['SQLITE_READONLY', 'PERCH_ERR_STORE_READONLY'],
      ['SQLITE_READONLY_DBMOVED', 'PERCH_ERR_STORE_READONLY'],
      ['EACCES', 'PERCH_ERR_STORE_READONLY'],
      ['EROFS', 'PERCH_ERR_STORE_READONLY'],
      ['SQLITE_FULL', 'PERCH_ERR_STORE_FULL'],
      ['ENOSPC', 'PERCH_ERR_STORE_FULL'],
      ['SQLITE_BUSY', 'PERCH_ERR_STORE_UNAVAILABLE'],
      ['SQLITE_IOERR_WRITE', 'PERCH_ERR_STORE_UNAVAILABLE'],
      ['SQLITE_CORRUPT', 'PERCH_ERR_STORE_UNAVAILABLE'],
      ['', 'PERCH_ERR_STORE_UNAVAILABLE'],
    ];
    for (const [code, expected] of cases) assert.equal(storeErrorCode(err(code)), expected, code);
    assert.equal(storeErrorCode('a string'), 'PERCH_ERR_STORE_UNAVAILABLE');
  });

  void test('an I/O error in a writable or missing directory stays PERCH_ERR_STORE_UNAVAILABLE', async () => {
    const tmp = await makeTempDir();
    try {
      mkdirSync(tmp.join('d'));
      assert.equal(storeErrorCode(err('SQLITE_IOERR_WRITE'), tmp.join('d')), 'PERCH_ERR_STORE_UNAVAILABLE');
      assert.equal(storeErrorCode(err('SQLITE_IOERR_WRITE'), tmp.join('missing')), 'PERCH_ERR_STORE_UNAVAILABLE');
    } finally {
      await tmp.remove();
    }
  });

  void test('toStoreError keeps the cause and passes PerchErrors through', () => {
    const cause = err('SQLITE_FULL');
    const e = toStoreError(cause, 'outbox append');
    assert.equal(e.code, 'PERCH_ERR_STORE_FULL');
    assert.equal(e.cause, cause);
    assert.match(e.message, /^outbox append: SQLITE_FULL/);
    const p = new PerchError('PERCH_ERR_EVENT_TOO_LARGE');
    assert.equal(toStoreError(p, 'x'), p);
  });

  void test('recognises corruption errors', () => {
    assert.ok(isCorruptionError(err('SQLITE_NOTADB')));
    assert.ok(isCorruptionError(err('SQLITE_CORRUPT_VTAB')));
    assert.ok(!isCorruptionError(err('SQLITE_FULL')));
  });
});
