// Schema migrations by PRAGMA user_version (docs/design.md house style 6): an ordered array, each step run
// in its own transaction together with the version bump, so a crash mid-migration leaves the old
// version and the step runs again at the next start. Never edit a shipped step; append a new one.
import type { Database } from 'better-sqlite3';
import { PerchError } from '../base/errors.js';

export interface Migration {
  version: number;
  name: string;
  up(db: Database): void;
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'outbox, meta, result cache, device state',
    up(db) {
      db.exec(`
        -- Counters that must outlive the rows they count: outbox.last_seq is written by every
        -- transaction that deletes events; the live counter is max(last_seq, max(outbox.seq)).
        CREATE TABLE meta (
          key   TEXT PRIMARY KEY,
          value INTEGER NOT NULL
        ) STRICT, WITHOUT ROWID;
        INSERT INTO meta (key, value) VALUES ('outbox.last_seq', 0);

        -- seq is the rowid: appends go to the end of the b-tree and claims read it in order.
        CREATE TABLE outbox (
          seq        INTEGER PRIMARY KEY,
          event_id   TEXT    NOT NULL,
          type       TEXT    NOT NULL,
          payload    TEXT    NOT NULL,
          created_at INTEGER NOT NULL, -- wall-clock epoch ms (TTL must work across restarts)
          bytes      INTEGER NOT NULL  -- UTF-8 bytes of type + payload, what the budget counts
        ) STRICT;
        CREATE INDEX outbox_created_at ON outbox (created_at);

        CREATE TABLE result_cache (
          id         INTEGER PRIMARY KEY,
          key        TEXT    NOT NULL UNIQUE, -- SHA-256 hex of model, version and inputs
          model      TEXT    NOT NULL,
          version    INTEGER NOT NULL,
          outputs    BLOB    NOT NULL,        -- result-cache-codec format
          bytes      INTEGER NOT NULL,        -- length of outputs, what the budget counts
          expires_at INTEGER NOT NULL,        -- wall-clock epoch ms
          last_used  INTEGER NOT NULL         -- logical clock, larger = used more recently
        ) STRICT;
        CREATE INDEX result_cache_lru ON result_cache (last_used);
        CREATE INDEX result_cache_model ON result_cache (model, version);
        CREATE INDEX result_cache_expiry ON result_cache (expires_at);

        CREATE TABLE device_state (
          key        TEXT    PRIMARY KEY,
          value      TEXT    NOT NULL, -- JSON
          updated_at INTEGER NOT NULL  -- wall-clock epoch ms
        ) STRICT;
      `);
    },
  },
  {
    version: 2,
    name: 'outbox traceparent',
    up(db) {
      // The W3C traceparent of the span that appended the event (docs/observability.md), NULL when
      // traces are off: an upload after a restart still links to it. Nullable, so adding it
      // rewrites no row; it runs in the migration's transaction like every step.
      db.exec('ALTER TABLE outbox ADD COLUMN traceparent TEXT');
    },
  },
];

/** The version a database has once every migration ran. */
export const SCHEMA_VERSION = MIGRATIONS.length;

export function schemaVersion(db: Database): number {
  return Number(db.pragma('user_version', { simple: true }));
}

/** Brings the schema to SCHEMA_VERSION; returns the version found. */
export function migrate(db: Database, migrations: readonly Migration[] = MIGRATIONS): number {
  migrations.forEach((m, i) => {
    if (m.version !== i + 1) throw new PerchError('PERCH_ERR_INTERNAL', `migration ${m.name} has version ${m.version}, expected ${i + 1}`);
  });
  const found = schemaVersion(db);
  if (found > migrations.length) {
    // A newer Perch wrote this file (a rollback of the runtime): never guess at its layout.
    throw new PerchError('PERCH_ERR_STORE_UNAVAILABLE', `database schema version ${found} is newer than this runtime's ${migrations.length}`);
  }
  for (const m of migrations.slice(found)) {
    db.transaction(() => {
      m.up(db);
      db.pragma(`user_version = ${m.version}`);
    })();
  }
  return found;
}
