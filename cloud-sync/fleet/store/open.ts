// Opens the fleet store a command is configured for (fleet-store.ts): the embedded SQLite file
// `<store>/fleet.db` by default, or PostgreSQL when `db` (--db, PERCH_FLEET_DB) is a postgres://
// URL. Commands that only read (devices, events, the unknown-device check) use
// openExistingFleetStore, which creates nothing where serve never ran.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { redactDbUrl } from './db-url.js';
import type { FleetStore } from './fleet-store.js';
import { DB_FILE, SqliteFleetStore } from './sqlite-store.js';

export interface FleetStoreLocation {
  /** Fleet store folder (models, and fleet.db for the embedded store). */
  store: string;
  /** postgres://... : the fleet database on PostgreSQL instead. */
  db?: string;
}

/** Opens the store, creating and migrating it when needed. */
export async function openFleetStore(where: FleetStoreLocation): Promise<FleetStore> {
  if (where.db) return openPostgres(where.db);
  return SqliteFleetStore.open(where.store);
}

/** Opens the store when it exists; undefined when nothing was ever stored there. */
export async function openExistingFleetStore(where: FleetStoreLocation): Promise<FleetStore | undefined> {
  // A database server always "exists"; its schema is created on first open.
  if (where.db) return openPostgres(where.db);
  const file = join(where.store, DB_FILE);
  return existsSync(file) ? new SqliteFleetStore(file) : undefined;
}

/** Where the store is, for messages (the file path, or the URL without its password). */
export function describeFleetStore(where: FleetStoreLocation): string {
  return where.db ? redactDbUrl(where.db) : join(where.store, DB_FILE);
}

// pg is loaded only when PostgreSQL is asked for: the embedded default does not pay for it.
async function openPostgres(url: string): Promise<FleetStore> {
  const { PostgresFleetStore } = await import('./postgres-store.js');
  return PostgresFleetStore.open(url);
}
