// The one migration loop of the fleet stores: read the schema version, refuse a database newer
// than this code, apply each migration above the version in order, recording each one. SQLite
// runs it synchronously inside the store's constructor (better-sqlite3), PostgreSQL over a
// connection (pg), so the loop is a generator of steps and each dialect is a thin driver that
// carries them out, sync or async: the order and the checks are written once.
import { PerchError } from '../../../runtime/base/errors.js';

/** A dialect's migrations: SQL per version, 1..latest. */
export interface Schema {
  latest: number;
  migrations: Readonly<Record<number, string>>;
}

type Step = { kind: 'version' } | { kind: 'apply'; version: number; sql: string };

/** What a dialect does for each step: read the version, or run one migration's SQL and record its version. */
export interface SyncDialect {
  version(): number;
  apply(version: number, sql: string): void;
}

export interface AsyncDialect {
  version(): Promise<number>;
  apply(version: number, sql: string): Promise<void>;
}

function* steps(schema: Schema): Generator<Step, void, number> {
  const found = yield { kind: 'version' };
  if (found > schema.latest) {
    throw new PerchError('PERCH_ERR_STORE_UNAVAILABLE', `fleet database schema ${found} is newer than this perch fleet (${schema.latest})`);
  }
  for (let v = found + 1; v <= schema.latest; v++) yield { kind: 'apply', version: v, sql: schema.migrations[v] ?? '' };
}

/** Runs the loop synchronously (the caller holds the transaction). */
export function migrateSync(schema: Schema, d: SyncDialect): void {
  const g = steps(schema);
  for (let s = g.next(0); !s.done; ) {
    const step = s.value;
    if (step.kind === 'version') s = g.next(d.version());
    else {
      d.apply(step.version, step.sql);
      s = g.next(0);
    }
  }
}

/** Runs the loop over an async connection (the caller holds the transaction). */
export async function migrateAsync(schema: Schema, d: AsyncDialect): Promise<void> {
  const g = steps(schema);
  for (let s = g.next(0); !s.done; ) {
    const step = s.value;
    if (step.kind === 'version') s = g.next(await d.version());
    else {
      await d.apply(step.version, step.sql);
      s = g.next(0);
    }
  }
}
