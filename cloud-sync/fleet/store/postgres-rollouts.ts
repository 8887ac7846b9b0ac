// The rollout tables of the PostgreSQL fleet store (rollout-store.ts; the SQLite twin is
// sqlite-rollouts.ts): same columns, BIGINT for ms and revisions, the rest as JSON text. Guarded
// the same way: a save names the revision it started from (UPDATE ... WHERE revision = $n), and
// the claim is one UPDATE ... RETURNING, so under PostgreSQL's row locks two workers on two hosts
// never both take a rollout's lease.
import type { Pool, PoolClient } from 'pg';
import { ROLLOUT_COLUMNS, rolloutDoc, toDevice, toRecord, type RolloutRow } from './rollout-rows.js';
import type { RolloutDevice, RolloutRecord, RolloutState, RolloutStore } from './rollout-store.js';

const UPSERT_DEVICES = `INSERT INTO rollout_devices (rollout_id, device_id, doc)
  SELECT $1, u.device_id, u.doc FROM unnest($2::text[], $3::text[]) AS u(device_id, doc)
  ON CONFLICT (rollout_id, device_id) DO UPDATE SET doc = EXCLUDED.doc`;

export class PostgresRollouts implements RolloutStore {
  constructor(
    private readonly pool: Pool,
    private readonly transaction: <T>(fn: (c: PoolClient) => Promise<T>) => Promise<T>,
  ) {}

  async createRollout(rollout: RolloutRecord, devices: readonly RolloutDevice[]): Promise<void> {
    await this.transaction(async (c) => {
      await c.query(
        `INSERT INTO rollouts (id, created_at, state, settled, revision, lease_owner, lease_until, doc) VALUES ($1, $2, $3, $4, 1, NULL, 0, $5)`,
        [rollout.id, rollout.createdAt, rollout.state, rollout.settled, rolloutDoc(rollout)],
      );
      await upsertDevices(c, rollout.id, devices);
    });
  }

  async rollout(id: string): Promise<RolloutRecord | undefined> {
    const r = await this.pool.query<RolloutRow>(`SELECT ${ROLLOUT_COLUMNS} FROM rollouts WHERE id = $1`, [id]);
    return r.rows[0] ? toRecord(r.rows[0]) : undefined;
  }

  async list(): Promise<RolloutRecord[]> {
    const r = await this.pool.query<RolloutRow>(`SELECT ${ROLLOUT_COLUMNS} FROM rollouts ORDER BY created_at DESC, id COLLATE "C" DESC`);
    return r.rows.map(toRecord);
  }

  async rolloutDevices(id: string): Promise<RolloutDevice[]> {
    const r = await this.pool.query<{ doc: string }>('SELECT doc FROM rollout_devices WHERE rollout_id = $1 ORDER BY device_id COLLATE "C"', [id]);
    return r.rows.map((row) => toDevice(row.doc));
  }

  async saveRollout(rollout: RolloutRecord, devices: readonly RolloutDevice[]): Promise<number | null> {
    return this.transaction(async (c) => {
      const r = await c.query<{ revision: number }>(
        `UPDATE rollouts SET doc = $1, state = $2, settled = $3, revision = revision + 1 WHERE id = $4 AND revision = $5 RETURNING revision`,
        [rolloutDoc(rollout), rollout.state, rollout.settled, rollout.id, rollout.revision],
      );
      const revision = r.rows[0]?.revision;
      if (revision === undefined) return null;
      await upsertDevices(c, rollout.id, devices);
      return revision;
    });
  }

  async setRolloutState(id: string, to: RolloutState, from: readonly RolloutState[], reason: string | null, now: number): Promise<{ changed: boolean; rollout: RolloutRecord } | undefined> {
    return this.transaction(async (c) => {
      const r = await c.query<RolloutRow>(`SELECT ${ROLLOUT_COLUMNS} FROM rollouts WHERE id = $1 FOR UPDATE`, [id]);
      if (!r.rows[0]) return undefined;
      const current = toRecord(r.rows[0]);
      if (!from.includes(current.state)) return { changed: false, rollout: current };
      const next: RolloutRecord = { ...current, state: to, reason: reason ?? current.reason, settled: false, updatedAt: now };
      const u = await c.query<{ revision: number }>(
        'UPDATE rollouts SET doc = $1, state = $2, settled = false, revision = revision + 1 WHERE id = $3 RETURNING revision',
        [rolloutDoc(next), to, id],
      );
      return { changed: true, rollout: { ...next, revision: u.rows[0]?.revision ?? current.revision + 1 } };
    });
  }

  async claimRollouts(owner: string, now: number, leaseMs: number): Promise<string[]> {
    const r = await this.pool.query<{ id: string }>(
      `UPDATE rollouts SET lease_owner = $1, lease_until = $2
       WHERE settled = false AND state <> 'paused' AND (lease_owner IS NULL OR lease_owner = $1 OR lease_until <= $3)
       RETURNING id`,
      [owner, now + leaseMs, now],
    );
    return r.rows.map((row) => row.id);
  }

  async releaseRollout(id: string, owner: string): Promise<void> {
    await this.pool.query('UPDATE rollouts SET lease_owner = NULL, lease_until = 0 WHERE id = $1 AND lease_owner = $2', [id, owner]);
  }
}

async function upsertDevices(c: PoolClient, rolloutId: string, devices: readonly RolloutDevice[]): Promise<void> {
  if (devices.length === 0) return;
  await c.query(UPSERT_DEVICES, [rolloutId, devices.map((d) => d.deviceId), devices.map((d) => JSON.stringify(d))]);
}
