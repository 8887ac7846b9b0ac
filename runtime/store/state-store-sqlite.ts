// The state store on SQLite: one row per key in device_state, each write its own (FULL) commit.
import type { Database, Statement } from 'better-sqlite3';
import { systemClock, type Clock } from '../base/clock.js';
import { PerchError } from '../base/errors.js';
import type { StateStore } from './state-store.js';
import { toStoreError, type StoreErrorContext } from './store-errors.js';

export interface SqliteStateStoreOptions {
  clock?: Clock;
  dir?: string;
  /** Set when the store opened degraded: writes fail with this code. */
  degraded?: StoreErrorContext['degraded'];
}

export class SqliteStateStore implements StateStore {
  private readonly clock: Clock;
  private readonly errCtx: StoreErrorContext;
  private readonly st: Record<'get' | 'set' | 'delete' | 'keys', Statement>;

  constructor(db: Database, opts: SqliteStateStoreOptions = {}) {
    this.clock = opts.clock ?? systemClock;
    this.errCtx = { dir: opts.dir, degraded: opts.degraded };
    this.st = {
      get: db.prepare('SELECT value FROM device_state WHERE key = ?').pluck(),
      set: db.prepare(
        'INSERT INTO device_state (key, value, updated_at) VALUES (?, ?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at',
      ),
      delete: db.prepare('DELETE FROM device_state WHERE key = ?'),
      keys: db.prepare('SELECT key FROM device_state ORDER BY key').pluck(),
    };
  }

  get<T = unknown>(key: string): T | undefined {
    let text: string | undefined;
    try {
      text = this.st.get.get(key) as string | undefined;
    } catch (err) {
      throw toStoreError(err, `state get ${key}`, this.errCtx);
    }
    return text === undefined ? undefined : (JSON.parse(text) as T);
  }

  set(key: string, value: unknown): void {
    let text: string | undefined;
    try {
      text = JSON.stringify(value);
    } catch (err) {
      throw new PerchError('PERCH_ERR_INTERNAL', `state ${key}: value is not JSON-serializable`, { cause: err });
    }
    if (text === undefined) throw new PerchError('PERCH_ERR_INTERNAL', `state ${key}: undefined cannot be stored, use delete()`);
    try {
      this.st.set.run(key, text, this.clock.wallNow());
    } catch (err) {
      throw toStoreError(err, `state set ${key}`, this.errCtx);
    }
  }

  delete(key: string): boolean {
    try {
      return this.st.delete.run(key).changes > 0;
    } catch (err) {
      throw toStoreError(err, `state delete ${key}`, this.errCtx);
    }
  }

  keys(): string[] {
    try {
      return this.st.keys.all() as string[];
    } catch (err) {
      throw toStoreError(err, 'state keys', this.errCtx);
    }
  }
}
