// The rollout tables of the embedded fleet store (rollout-store.ts) on the SQLite file fleet.db.
// A rollout is a row with its state, revision and lease in columns (what the guarded updates and
// the claim test) and the rest as JSON; each targeted device is a row with its JSON. Every
// method runs synchronously inside better-sqlite3 (one transaction each) and returns a settled
// Promise, so no transaction ever spans an await.
import type { Database as Db, Statement } from 'better-sqlite3';
import { ROLLOUT_COLUMNS, rolloutDoc, toDevice, toRecord, type RolloutRow } from './rollout-rows.js';
import type { RolloutDevice, RolloutRecord, RolloutState, RolloutStore } from './rollout-store.js';

export class SqliteRollouts implements RolloutStore {
  private readonly insertRollout: Statement;
  private readonly upsertDevice: Statement;
  private readonly selectRollout: Statement;
  private readonly selectRollouts: Statement;
  private readonly selectDevices: Statement;
  private readonly updateRollout: Statement;
  private readonly claim: Statement;
  private readonly release: Statement;

  constructor(private readonly db: Db) {
    this.insertRollout = db.prepare(
      `INSERT INTO rollouts (id, created_at, state, settled, revision, lease_owner, lease_until, doc)
       VALUES (?, ?, ?, ?, 1, NULL, 0, ?)`,
    );
    this.upsertDevice = db.prepare(
      `INSERT INTO rollout_devices (rollout_id, device_id, doc) VALUES (?, ?, ?)
       ON CONFLICT (rollout_id, device_id) DO UPDATE SET doc = excluded.doc`,
    );
    this.selectRollout = db.prepare(`SELECT ${ROLLOUT_COLUMNS} FROM rollouts WHERE id = ?`);
    this.selectRollouts = db.prepare(`SELECT ${ROLLOUT_COLUMNS} FROM rollouts ORDER BY created_at DESC, id DESC`);
    this.selectDevices = db.prepare('SELECT doc FROM rollout_devices WHERE rollout_id = ? ORDER BY device_id').pluck();
    this.updateRollout = db.prepare(
      `UPDATE rollouts SET doc = ?, state = ?, settled = ?, revision = revision + 1
       WHERE id = ? AND revision = ? RETURNING revision`,
    ).pluck();
    // One statement: the row's lease is taken only if free, expired or ours, so two workers
    // running it at the same moment never both get a row (SQLite serialises writers).
    this.claim = db.prepare(
      `UPDATE rollouts SET lease_owner = ?, lease_until = ?
       WHERE settled = 0 AND state <> 'paused' AND (lease_owner IS NULL OR lease_owner = ? OR lease_until <= ?)
       RETURNING id`,
    ).pluck();
    this.release = db.prepare('UPDATE rollouts SET lease_owner = NULL, lease_until = 0 WHERE id = ? AND lease_owner = ?');
  }

  async createRollout(rollout: RolloutRecord, devices: readonly RolloutDevice[]): Promise<void> {
    this.db.transaction(() => {
      this.insertRollout.run(rollout.id, rollout.createdAt, rollout.state, rollout.settled ? 1 : 0, rolloutDoc(rollout));
      for (const d of devices) this.upsertDevice.run(rollout.id, d.deviceId, JSON.stringify(d));
    }).immediate();
  }

  async rollout(id: string): Promise<RolloutRecord | undefined> {
    const row = this.selectRollout.get(id) as RolloutRow | undefined;
    return row ? toRecord(row) : undefined;
  }

  async list(): Promise<RolloutRecord[]> {
    return (this.selectRollouts.all() as RolloutRow[]).map(toRecord);
  }

  async rolloutDevices(id: string): Promise<RolloutDevice[]> {
    return (this.selectDevices.all(id) as string[]).map(toDevice);
  }

  async saveRollout(rollout: RolloutRecord, devices: readonly RolloutDevice[]): Promise<number | null> {
    return this.db.transaction((): number | null => {
      const revision = this.updateRollout.get(rolloutDoc(rollout), rollout.state, rollout.settled ? 1 : 0, rollout.id, rollout.revision) as number | undefined;
      if (revision === undefined) return null;
      for (const d of devices) this.upsertDevice.run(rollout.id, d.deviceId, JSON.stringify(d));
      return revision;
    }).immediate();
  }

  async setRolloutState(id: string, to: RolloutState, from: readonly RolloutState[], reason: string | null, now: number): Promise<{ changed: boolean; rollout: RolloutRecord } | undefined> {
    return this.db.transaction(() => {
      const row = this.selectRollout.get(id) as RolloutRow | undefined;
      if (!row) return undefined;
      const current = toRecord(row);
      if (!from.includes(current.state)) return { changed: false, rollout: current };
      const next: RolloutRecord = { ...current, state: to, reason: reason ?? current.reason, settled: false, updatedAt: now };
      const revision = this.updateRollout.get(rolloutDoc(next), to, 0, id, current.revision) as number;
      return { changed: true, rollout: { ...next, revision } };
    }).immediate();
  }

  async claimRollouts(owner: string, now: number, leaseMs: number): Promise<string[]> {
    return this.claim.all(owner, now + leaseMs, owner, now) as string[];
  }

  async releaseRollout(id: string, owner: string): Promise<void> {
    this.release.run(id, owner);
  }
}
