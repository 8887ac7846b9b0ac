// The row mapping both rollout tables share (sqlite-rollouts.ts, postgres-rollouts.ts): a
// rollout is a row with state, settled flag and revision in columns (what the guarded updates
// and the claim test) and the rest as JSON text; a device is its JSON.
import type { RolloutDevice, RolloutRecord, RolloutState } from './rollout-store.js';

export interface RolloutRow {
  doc: string;
  state: string;
  /** SQLite gives 0/1, PostgreSQL a boolean. */
  settled: boolean | number;
  revision: number;
}

export const ROLLOUT_COLUMNS = 'doc, state, settled, revision';

export function toRecord(row: RolloutRow): RolloutRecord {
  const r = JSON.parse(row.doc) as RolloutRecord;
  return { ...r, state: row.state as RolloutState, settled: row.settled === true || row.settled === 1, revision: row.revision };
}

/** The JSON column of a rollout: everything but the revision (a column of its own). */
export function rolloutDoc(rollout: RolloutRecord): string {
  const { revision: _r, ...doc } = rollout;
  return JSON.stringify(doc);
}

export function toDevice(doc: string): RolloutDevice {
  return JSON.parse(doc) as RolloutDevice;
}
