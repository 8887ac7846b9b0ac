// The schema of the PostgreSQL fleet store (postgres-store.ts): the same tables as the SQLite one
// (sqlite-migrations.ts), ms timestamps and seqs as BIGINT. Versions live in
// perch_fleet_schema; migrate() runs under a transaction-scoped advisory lock, so several serve
// workers starting together on several hosts migrate once (the loop: migration-runner.ts).
import type { PoolClient } from 'pg';
import { migrationsAbove } from './migration-runner.js';

export const PG_SCHEMA_VERSION = 3;
/** pg_advisory_xact_lock key of the migration ("perch" in ASCII). */
const MIGRATION_LOCK = 0x7065726368;

const MIGRATIONS: Record<number, string> = {
  1: `
    CREATE TABLE events (
      device_id   TEXT   NOT NULL,
      seq         BIGINT NOT NULL,
      event_id    TEXT   NOT NULL,
      ts          TEXT   NOT NULL,
      type        TEXT   NOT NULL,
      payload     TEXT   NOT NULL,
      received_at BIGINT NOT NULL,
      PRIMARY KEY (device_id, seq)
    );
    CREATE TABLE devices (
      device_id   TEXT PRIMARY KEY,
      online      BOOLEAN,
      status      TEXT,
      status_at   BIGINT,
      reported    TEXT,
      reported_at BIGINT
    );
  `,
  2: `
    CREATE TABLE desired (
      device_id    TEXT   PRIMARY KEY,
      version      BIGINT NOT NULL,
      doc          TEXT   NOT NULL,
      published_at BIGINT NOT NULL
    );
  `,
  // Rollouts (rollout-store.ts, postgres-rollouts.ts): the columns of SQLite's migration 3.
  3: `
    CREATE TABLE rollouts (
      id          TEXT    PRIMARY KEY,
      created_at  BIGINT  NOT NULL,
      state       TEXT    NOT NULL,
      settled     BOOLEAN NOT NULL,
      revision    BIGINT  NOT NULL,
      lease_owner TEXT,
      lease_until BIGINT  NOT NULL,
      doc         TEXT    NOT NULL
    );
    CREATE TABLE rollout_devices (
      rollout_id TEXT NOT NULL,
      device_id  TEXT NOT NULL,
      doc        TEXT NOT NULL,
      PRIMARY KEY (rollout_id, device_id)
    );
  `,
};

export async function migratePostgres(client: PoolClient): Promise<void> {
  await client.query('BEGIN');
  try {
    await client.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK]);
    await client.query('CREATE TABLE IF NOT EXISTS perch_fleet_schema (version INTEGER NOT NULL)');
    const found = (await client.query<{ version: number }>('SELECT version FROM perch_fleet_schema')).rows[0]?.version ?? 0;
    for (const m of migrationsAbove({ latest: PG_SCHEMA_VERSION, migrations: MIGRATIONS }, found)) {
      await client.query(m.sql);
      // One row: the version reached (none before the first migration).
      await client.query('DELETE FROM perch_fleet_schema');
      await client.query('INSERT INTO perch_fleet_schema (version) VALUES ($1)', [m.version]);
    }
    await client.query('COMMIT');
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  }
}
