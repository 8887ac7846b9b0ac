// Opens the fleet store a command is configured for (fleet-store.ts). Today: the embedded SQLite
// file `<store>/fleet.db`. Commands that only read (devices, events, the unknown-device check)
// use openExistingFleetStore, which creates nothing where serve never ran.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { FleetStore } from './fleet-store.js';
import { DB_FILE, SqliteFleetStore } from './sqlite-store.js';

export interface FleetStoreLocation {
  /** Fleet store folder (models, and fleet.db for the embedded store). */
  store: string;
}

/** Opens the store, creating and migrating it when needed. */
export async function openFleetStore(where: FleetStoreLocation): Promise<FleetStore> {
  return SqliteFleetStore.open(where.store);
}

/** Opens the store when it exists; undefined when nothing was ever stored there. */
export async function openExistingFleetStore(where: FleetStoreLocation): Promise<FleetStore | undefined> {
  const file = join(where.store, DB_FILE);
  return existsSync(file) ? new SqliteFleetStore(file) : undefined;
}

/** Where the store is, for messages (the file path for the embedded store). */
export function describeFleetStore(where: FleetStoreLocation): string {
  return join(where.store, DB_FILE);
}
