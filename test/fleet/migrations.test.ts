// The fleet stores' migrations (cloud-sync/fleet/store/migration-runner.ts and its two dialects)
// on a real SQLite file and a real PostgreSQL database: a database left at an older schema is
// brought up to date keeping its rows, opening it again changes nothing, and a database newer
// than this code is refused with PERCH_ERR_STORE_UNAVAILABLE instead of being written to.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import Database from 'better-sqlite3';
import pg from 'pg';
import { openFleetStore } from '../../cloud-sync/fleet/store/open.js';
import { DB_FILE, SqliteFleetStore } from '../../cloud-sync/fleet/store/sqlite-store.js';
import { startPostgres, type Postgres } from '../helpers/postgres.js';
import { TempDirs } from './harness.js';

const temp = new TempDirs();
let server: Postgres;
before(async () => {
  server = await startPostgres();
});
after(async () => {
  temp.cleanup();
  await server.close();
});

const unavailable = (e: Error & { code?: string }): boolean => {
  assert.equal(e.code, 'PERCH_ERR_STORE_UNAVAILABLE');
  assert.match(e.message, /schema 99 is newer/);
  return true;
};

test('SQLite: version 1 is migrated up keeping its events; a newer file is refused', async () => {
  const dir = temp.make();
  await SqliteFleetStore.open(dir).close();
  // Back to schema 1 by hand: the tables of migrations 2 and 3 gone, user_version 1.
  const raw = new Database(join(dir, DB_FILE));
  raw.exec('DROP TABLE desired; DROP TABLE rollouts; DROP TABLE rollout_devices');
  raw.exec(`INSERT INTO events VALUES ('pi-1', 1, 'e1', '1', 't', 'null', 1)`);
  raw.pragma('user_version = 1');
  raw.close();
  for (let i = 0; i < 2; i++) {
    const db = SqliteFleetStore.open(dir);
    assert.deepEqual((await db.events('pi-1', 0)).map((e) => e.seq), [1]);
    assert.equal(await db.desired('pi-1'), undefined, 'migration 2 applied');
    assert.deepEqual(await db.rollouts.list(), [], 'migration 3 applied');
    await db.close();
  }
  const check = new Database(join(dir, DB_FILE));
  assert.equal(check.pragma('user_version', { simple: true }), 3);
  check.pragma('user_version = 99');
  check.close();
  assert.throws(() => SqliteFleetStore.open(dir), unavailable);
});

test('PostgreSQL: version 1 is migrated up keeping its events; a newer database is refused', async () => {
  const url = await server.createDatabase();
  await (await openFleetStore({ store: '/nonexistent', db: url })).close();
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    await c.query('DROP TABLE desired; DROP TABLE rollouts; DROP TABLE rollout_devices');
    await c.query(`INSERT INTO events VALUES ('pi-1', 1, 'e1', '1', 't', 'null', 1)`);
    await c.query('UPDATE perch_fleet_schema SET version = 1');
    for (let i = 0; i < 2; i++) {
      const db = await openFleetStore({ store: '/nonexistent', db: url });
      assert.deepEqual((await db.events('pi-1', 0)).map((e) => e.seq), [1]);
      assert.equal(await db.desired('pi-1'), undefined, 'migration 2 applied');
      assert.deepEqual(await db.rollouts.list(), [], 'migration 3 applied');
      await db.close();
    }
    assert.deepEqual((await c.query('SELECT version FROM perch_fleet_schema')).rows, [{ version: 3 }]);
    await c.query('UPDATE perch_fleet_schema SET version = 99');
  } finally {
    await c.end();
  }
  await assert.rejects(openFleetStore({ store: '/nonexistent', db: url }), unavailable);
});
