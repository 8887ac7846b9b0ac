// The fleet store (fleet-store.ts) on PostgreSQL (`PERCH_FLEET_DB=postgres://...`), so serve
// workers on several hosts share devices, events and desired documents. Same semantics as the
// SQLite store: events deduplicated by the (device_id, seq) primary key with ON CONFLICT DO
// NOTHING (a second worker inserting the same seq waits for the first one's commit, then skips
// it: each event stored once); one statement per batch; the desired counter raised under a
// per-device advisory lock. BIGINT columns are read back as numbers (seqs and ms timestamps stay
// below 2^53, which the event schema enforces).
import pg from 'pg';
import type { Pool, PoolClient } from 'pg';
import { PerchError } from '../../../runtime/base/errors.js';
import { desiredSchema, type DesiredState, type EventMessage } from '../../protocol/schemas.js';
import type { DeviceRow, DeviceView, FleetStore, HeldSeqs, IngestWrite, StoredEvent } from './fleet-store.js';
import { redactDbUrl } from './db-url.js';
import { migratePostgres } from './postgres-migrations.js';
import { PostgresRollouts } from './postgres-rollouts.js';
import type { RolloutStore } from './rollout-store.js';

const INT8_OID = 20;
/** BIGINT as a JS number for this pool only (pg's global default is a string). */
const types = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    oid === INT8_OID ? (v: string) => Number(v) : pg.types.getTypeParser(oid, format as 'text')) as typeof pg.types.getTypeParser,
};

const UPSERT_STATUS = `INSERT INTO devices (device_id, online, status, status_at) VALUES ($1, $2, $3, $4)
  ON CONFLICT (device_id) DO UPDATE SET online = EXCLUDED.online, status = EXCLUDED.status, status_at = EXCLUDED.status_at`;
const UPSERT_REPORTED = `INSERT INTO devices (device_id, reported, reported_at) VALUES ($1, $2, $3)
  ON CONFLICT (device_id) DO UPDATE SET reported = EXCLUDED.reported, reported_at = EXCLUDED.reported_at`;

export class PostgresFleetStore implements FleetStore {
  /** The rollout tables (rollout-store.ts, postgres-rollouts.ts). */
  readonly rollouts: RolloutStore;

  private constructor(
    private readonly pool: Pool,
    readonly location: string,
  ) {
    this.rollouts = new PostgresRollouts(pool, (fn) => this.transaction(fn));
  }

  /** Connects (a pool of at most `max` connections) and brings the schema up to date. */
  static async open(url: string, opts: { max?: number } = {}): Promise<PostgresFleetStore> {
    const pool = new pg.Pool({ connectionString: url, max: opts.max ?? 4, types, connectionTimeoutMillis: 10_000, application_name: 'perch-fleet' });
    // An idle client losing its server (a restart) must not crash the process; the next query reconnects.
    pool.on('error', () => undefined);
    const location = redactDbUrl(url);
    let client: PoolClient;
    try {
      client = await pool.connect();
    } catch (err) {
      await pool.end().catch(() => undefined);
      throw new PerchError('PERCH_ERR_STORE_UNAVAILABLE', `fleet database ${location}: ${(err as Error).message}`, { cause: err });
    }
    try {
      await migratePostgres(client);
    } catch (err) {
      client.release();
      await pool.end().catch(() => undefined);
      throw err instanceof PerchError ? err : new PerchError('PERCH_ERR_STORE_UNAVAILABLE', `fleet database ${location}: ${(err as Error).message}`, { cause: err });
    }
    client.release();
    return new PostgresFleetStore(pool, location);
  }

  async storeEvents(deviceId: string, events: readonly EventMessage[], receivedAt: number): Promise<{ stored: number; duplicates: number }> {
    if (events.length === 0) return { stored: 0, duplicates: 0 };
    // One statement for the batch: atomic, one round trip, one commit.
    const r = await this.pool.query(
      `INSERT INTO events (device_id, seq, event_id, ts, type, payload, received_at)
       SELECT $1, u.seq, u.id, u.ts, u.type, u.payload, $7
       FROM unnest($2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[]) AS u(seq, id, ts, type, payload)
       ON CONFLICT (device_id, seq) DO NOTHING`,
      [
        deviceId,
        events.map((e) => e.seq),
        events.map((e) => e.id),
        events.map((e) => (typeof e.ts === 'number' ? String(e.ts) : e.ts)),
        events.map((e) => e.type),
        events.map((e) => JSON.stringify(e.payload ?? null)),
        receivedAt,
      ],
    );
    const stored = r.rowCount ?? 0;
    return { stored, duplicates: events.length - stored };
  }

  async recordStatus(deviceId: string, status: { online: boolean } | null, json: string | null, at: number): Promise<void> {
    await this.pool.query(
      UPSERT_STATUS,
      [deviceId, status === null ? null : status.online, json, at],
    );
  }

  async recordReported(deviceId: string, json: string | null, at: number): Promise<void> {
    await this.pool.query(
      UPSERT_REPORTED,
      [deviceId, json, at],
    );
  }

  async ingest(writes: readonly IngestWrite[], at: number): Promise<number[]> {
    if (writes.length === 0) return [];
    // Group commit (docs/fleet.md "Group commit"): every event batch of the group in one INSERT.
    const batches = writes.filter((w): w is Extract<IngestWrite, { kind: 'events' }> => w.kind === 'events');
    // A group of event batches only (what a worker ingests at rate): that one statement is the
    // whole transaction (autocommit: atomic, durable once it returns), one round trip instead of
    // BEGIN, INSERT, COMMIT.
    if (batches.length === writes.length) return credit(writes, await insertEvents(this.pool, batches, at));
    return this.transaction(async (c) => {
      const inserted = batches.length > 0 ? await insertEvents(c, batches, at) : new Set<string>();
      // Statuses and reported states in their order, after the events (they touch other rows).
      for (const w of writes) {
        if (w.kind === 'status') await c.query({ name: 'perch-status', text: UPSERT_STATUS, values: [w.deviceId, w.status === null ? null : w.status.online, w.json, at] });
        else if (w.kind === 'reported') await c.query({ name: 'perch-reported', text: UPSERT_REPORTED, values: [w.deviceId, w.json, at] });
      }
      return credit(writes, inserted);
    });
  }

  async events(deviceId: string, afterSeq: number, limit = 1000): Promise<StoredEvent[]> {
    const r = await this.pool.query<{ device_id: string; seq: number; event_id: string; ts: string; type: string; payload: string; received_at: number }>(
      `SELECT device_id, seq, event_id, ts, type, payload, received_at FROM events
       WHERE device_id = $1 AND seq > $2 ORDER BY seq LIMIT $3`,
      [deviceId, afterSeq, limit],
    );
    return r.rows.map((row) => ({
      deviceId: row.device_id,
      seq: row.seq,
      id: row.event_id,
      ts: /^\d+(\.\d+)?$/.test(row.ts) ? Number(row.ts) : row.ts,
      type: row.type,
      payload: JSON.parse(row.payload) as unknown,
      receivedAt: row.received_at,
    }));
  }

  async heldSeqs(deviceId: string, maxGaps = 10): Promise<HeldSeqs> {
    const first = (await this.pool.query<{ min: number | null }>('SELECT MIN(seq) AS min FROM events WHERE device_id = $1', [deviceId])).rows[0]?.min ?? null;
    if (first === null) return { firstSeq: null, contiguousSeq: null, gaps: [], missing: 0 };
    const runEnd = await this.pool.query<{ seq: number }>(
      `SELECT seq FROM events e WHERE device_id = $1
       AND NOT EXISTS (SELECT 1 FROM events n WHERE n.device_id = e.device_id AND n.seq = e.seq + 1)
       ORDER BY seq LIMIT 1`,
      [deviceId],
    );
    const gaps = await this.pool.query<{ from: number; to: number; missing: number }>(
      `SELECT "from", "to", (SUM("to" - "from" + 1) OVER ())::bigint AS missing FROM
         (SELECT prev + 1 AS "from", seq - 1 AS "to" FROM
            (SELECT seq, lag(seq) OVER (ORDER BY seq) AS prev FROM events WHERE device_id = $1) s
          WHERE seq - prev > 1) g
       ORDER BY "from" LIMIT $2`,
      [deviceId, Math.max(1, maxGaps)],
    );
    return {
      firstSeq: first,
      contiguousSeq: runEnd.rows[0]?.seq ?? null,
      gaps: maxGaps > 0 ? gaps.rows.map((g) => [g.from, g.to]) : [],
      missing: gaps.rows[0]?.missing ?? 0,
    };
  }

  async desired(deviceId: string): Promise<DesiredState | undefined> {
    const r = await this.pool.query<{ doc: string }>('SELECT doc FROM desired WHERE device_id = $1', [deviceId]);
    const row = r.rows[0];
    if (!row) return undefined;
    const parsed = desiredSchema.safeParse(JSON.parse(row.doc));
    return parsed.success ? parsed.data : undefined;
  }

  async recordDesired(deviceId: string, doc: DesiredState, at: number): Promise<DesiredState> {
    return this.transaction((c) => claimDesired(c, deviceId, doc, at));
  }

  async recordDesiredMany(entries: ReadonlyArray<{ deviceId: string; doc: DesiredState }>, at: number): Promise<DesiredState[]> {
    if (entries.length === 0) return [];
    // Locks taken in id order: two workers recording overlapping sets never deadlock.
    const order = entries.map((e, i) => ({ ...e, i })).sort((a, b) => (a.deviceId < b.deviceId ? -1 : a.deviceId > b.deviceId ? 1 : 0));
    return this.transaction(async (c) => {
      const out: DesiredState[] = new Array<DesiredState>(entries.length);
      for (const e of order) out[e.i] = await claimDesired(c, e.deviceId, e.doc, at);
      return out;
    });
  }

  async device(deviceId: string): Promise<DeviceRow | undefined> {
    const r = await this.pool.query<RawDeviceRow>(`${DEVICE_SQL} WHERE d.device_id = $1`, [deviceId]);
    return r.rows[0] ? toDeviceRow(r.rows[0]) : undefined;
  }

  async devices(): Promise<DeviceRow[]> {
    const r = await this.pool.query<RawDeviceRow>(`${DEVICE_SQL} ORDER BY d.device_id COLLATE "C"`);
    return r.rows.map(toDeviceRow);
  }

  async deviceViews(deviceIds: readonly string[]): Promise<Map<string, DeviceView>> {
    const out = new Map<string, DeviceView>();
    if (deviceIds.length === 0) return out;
    const r = await this.pool.query<{ device_id: string; online: boolean | null; reported: string | null }>(
      'SELECT device_id, online, reported FROM devices WHERE device_id = ANY($1::text[])', [deviceIds]);
    for (const row of r.rows) out.set(row.device_id, { online: row.online, reported: row.reported === null ? null : (JSON.parse(row.reported) as unknown) });
    return out;
  }

  async close(): Promise<void> {
    await this.pool.end();
  }

  /** Runs `fn` in one transaction on one connection; rolled back when it throws. */
  async transaction<T>(fn: (c: PoolClient) => Promise<T>): Promise<T> {
    const c = await this.pool.connect();
    try {
      await c.query('BEGIN');
      const out = await fn(c);
      await c.query('COMMIT');
      return out;
    } catch (err) {
      await c.query('ROLLBACK').catch(() => undefined);
      throw err;
    } finally {
      c.release();
    }
  }
}

const INSERT_EVENTS = `INSERT INTO events (device_id, seq, event_id, ts, type, payload, received_at)
  SELECT u.device_id, u.seq, u.id, u.ts, u.type, u.payload, $7
  FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[]) AS u(device_id, seq, id, ts, type, payload)
  ON CONFLICT (device_id, seq) DO NOTHING RETURNING device_id, seq`;

/**
 * The events of several batches in one statement (a named, prepared one: parsed and planned once
 * per connection), deduplicated by ON CONFLICT; returns the (device, seq) keys it inserted.
 */
async function insertEvents(q: Pool | PoolClient, batches: ReadonlyArray<Extract<IngestWrite, { kind: 'events' }>>, at: number): Promise<Set<string>> {
  // In (device, seq) order: two workers inserting overlapping groups take the row locks in the
  // same order, so they wait for each other instead of deadlocking.
  const rows = batches.flatMap((w) => w.events.map((e) => ({ deviceId: w.deviceId, e })))
    .sort((a, b) => (a.deviceId < b.deviceId ? -1 : a.deviceId > b.deviceId ? 1 : a.e.seq - b.e.seq));
  const inserted = new Set<string>();
  if (rows.length === 0) return inserted;
  const r = await q.query<{ device_id: string; seq: number }>({
    name: 'perch-ingest-events',
    text: INSERT_EVENTS,
    values: [
      rows.map((x) => x.deviceId),
      rows.map((x) => x.e.seq),
      rows.map((x) => x.e.id),
      rows.map((x) => (typeof x.e.ts === 'number' ? String(x.e.ts) : x.e.ts)),
      rows.map((x) => x.e.type),
      rows.map((x) => JSON.stringify(x.e.payload ?? null)),
      at,
    ],
  });
  for (const row of r.rows) inserted.add(`${row.device_id}\n${row.seq}`);
  return inserted;
}

/** Per write, the events it stored: the first write holding a (device, seq) gets the credit; a copy later in the group is a duplicate. */
function credit(writes: readonly IngestWrite[], inserted: Set<string>): number[] {
  return writes.map((w) => {
    if (w.kind !== 'events') return 0;
    let stored = 0;
    for (const e of w.events) if (inserted.delete(`${w.deviceId}\n${e.seq}`)) stored++;
    return stored;
  });
}

/** The desired counter of one device raised inside the caller's transaction. */
async function claimDesired(c: PoolClient, deviceId: string, doc: DesiredState, at: number): Promise<DesiredState> {
  // Serializes pushes for this device across every worker and host, row or no row yet.
  await c.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`perch-desired/${deviceId}`]);
  const stored = (await c.query<{ version: number }>('SELECT version FROM desired WHERE device_id = $1', [deviceId])).rows[0];
  const claimed = { ...doc, version: Math.max(doc.version, (stored?.version ?? 0) + 1) };
  await c.query(
    `INSERT INTO desired (device_id, version, doc, published_at) VALUES ($1, $2, $3, $4)
     ON CONFLICT (device_id) DO UPDATE SET version = EXCLUDED.version, doc = EXCLUDED.doc, published_at = EXCLUDED.published_at`,
    [deviceId, claimed.version, JSON.stringify(claimed), at],
  );
  return claimed;
}

// devices() orders COLLATE "C": ids in byte order, as SQLite orders them (a database's default collation may not).
const DEVICE_SQL = `SELECT d.device_id, d.online, d.status, d.reported,
    (SELECT COUNT(*) FROM events e WHERE e.device_id = d.device_id) AS event_count,
    (SELECT MAX(seq) FROM events e WHERE e.device_id = d.device_id) AS last_seq
  FROM devices d`;

interface RawDeviceRow {
  device_id: string;
  online: boolean | null;
  status: string | null;
  reported: string | null;
  event_count: number;
  last_seq: number | null;
}

function toDeviceRow(r: RawDeviceRow): DeviceRow {
  return {
    deviceId: r.device_id,
    online: r.online,
    status: r.status === null ? null : (JSON.parse(r.status) as unknown),
    reported: r.reported === null ? null : (JSON.parse(r.reported) as unknown),
    eventCount: r.event_count,
    lastSeq: r.last_seq,
  };
}
