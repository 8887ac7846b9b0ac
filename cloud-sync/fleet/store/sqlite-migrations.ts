// The schema of the embedded fleet store (fleet.db, sqlite-store.ts), one migration per user_version.
// migrate() applies the ones above the file's version, in order, in one IMMEDIATE transaction
// (the loop: migration-runner.ts).
import type { Database as Db } from 'better-sqlite3';
import { migrationsAbove } from './migration-runner.js';

const SCHEMA_VERSION = 3;

const MIGRATIONS: Record<number, string> = {
  1: `
    CREATE TABLE events (
      device_id   TEXT    NOT NULL,
      seq         INTEGER NOT NULL,
      event_id    TEXT    NOT NULL,
      ts          TEXT    NOT NULL,
      type        TEXT    NOT NULL,
      payload     TEXT    NOT NULL,
      received_at INTEGER NOT NULL,
      PRIMARY KEY (device_id, seq)
    ) WITHOUT ROWID;
    CREATE TABLE devices (
      device_id   TEXT PRIMARY KEY,
      online      INTEGER,
      status      TEXT,
      status_at   INTEGER,
      reported    TEXT,
      reported_at INTEGER
    );
  `,
  // The fleet owns each device's desired-version counter and document (not the broker's
  // retained copy, which a broker without persistence loses and anyone allowed to publish there
  // can replay); serve answers chunk requests only for what it names.
  2: `
    CREATE TABLE desired (
      device_id    TEXT    PRIMARY KEY,
      version      INTEGER NOT NULL,
      doc          TEXT    NOT NULL,
      published_at INTEGER NOT NULL
    );
  `,
  // Rollouts (rollout-store.ts): state, revision and lease in columns for the guarded updates
  // and the claim; the rest as JSON. One row per targeted device.
  3: `
    CREATE TABLE rollouts (
      id          TEXT    PRIMARY KEY,
      created_at  INTEGER NOT NULL,
      state       TEXT    NOT NULL,
      settled     INTEGER NOT NULL,
      revision    INTEGER NOT NULL,
      lease_owner TEXT,
      lease_until INTEGER NOT NULL,
      doc         TEXT    NOT NULL
    );
    CREATE TABLE rollout_devices (
      rollout_id TEXT NOT NULL,
      device_id  TEXT NOT NULL,
      doc        TEXT NOT NULL,
      PRIMARY KEY (rollout_id, device_id)
    ) WITHOUT ROWID;
  `,
};

/** Brings the schema to SCHEMA_VERSION; IMMEDIATE so two serve processes starting together do not both migrate. */
export function migrate(db: Db): void {
  db.transaction(() => {
    const found = db.pragma('user_version', { simple: true }) as number;
    for (const m of migrationsAbove({ latest: SCHEMA_VERSION, migrations: MIGRATIONS }, found)) {
      db.exec(m.sql);
      db.pragma(`user_version = ${m.version}`);
    }
  }).immediate();
}
