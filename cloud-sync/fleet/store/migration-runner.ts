// The one migration rule of the fleet stores: refuse a database newer than this code, and apply
// each migration above its version, in order. SQLite runs the loop synchronously inside the
// store's constructor (better-sqlite3), PostgreSQL over a connection (pg); each store reads its
// version and applies what this returns, so the order and the check are written once.
import { PerchError } from '../../../runtime/base/errors.js';

/** A dialect's migrations: SQL per version, 1..latest. */
export interface Schema {
  latest: number;
  migrations: Readonly<Record<number, string>>;
}

/** The migrations a database at version `found` still needs, in order; throws if it is newer than `schema`. */
export function migrationsAbove(schema: Schema, found: number): Array<{ version: number; sql: string }> {
  if (found > schema.latest) {
    throw new PerchError('PERCH_ERR_STORE_UNAVAILABLE', `fleet database schema ${found} is newer than this perch fleet (${schema.latest})`);
  }
  const out: Array<{ version: number; sql: string }> = [];
  for (let v = found + 1; v <= schema.latest; v++) out.push({ version: v, sql: schema.migrations[v] ?? '' });
  return out;
}
