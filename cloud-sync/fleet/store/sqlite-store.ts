// The embedded fleet store (fleet-store.ts), one SQLite file `<store>/fleet.db`: events
// deduplicated on (deviceId, seq), each device's last status, reported state and desired
// document. Same discipline as the runtime's store
// (runtime/store/pragmas.ts): WAL, FULL sync, statements prepared once, schema by user_version.
// Several `serve` processes on one host share this file; WAL and busy_timeout let them write in
// turn, and the UNIQUE key makes dedup hold across all of them. better-sqlite3 is synchronous:
// each method does its work at once and returns a settled Promise, so a transaction never
// spans an await.
import Database from 'better-sqlite3';
import type { Database as Db, Statement, Transaction } from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { PerchError } from '../../../runtime/base/errors.js';
import { applyPragmas } from '../../../runtime/store/pragmas.js';
import { desiredSchema, type DesiredState, type EventMessage } from '../../protocol/schemas.js';
import type { DeviceRow, DeviceView, FleetStore, HeldSeqs, IngestWrite, StoredEvent } from './fleet-store.js';
import type { RolloutStore } from './rollout-store.js';
import { migrate } from './sqlite-migrations.js';
import { SqliteRollouts } from './sqlite-rollouts.js';

export const DB_FILE = 'fleet.db';

export class SqliteFleetStore implements FleetStore {
  readonly db: Db;
  readonly location: string;
  /** Prepared on first use: a read-only open of a store from before schema 3 has no rollout tables. */
  private rolloutTables: SqliteRollouts | null = null;
  private readonly insertEvent: Statement;
  private readonly upsertStatus: Statement;
  private readonly upsertReported: Statement;
  private readonly selectEvents: Statement;
  private readonly selectDevice: Statement;
  private readonly selectDevices: Statement;
  private readonly selectViews: Statement;
  private readonly selectFirstSeq: Statement;
  private readonly selectRunEnd: Statement;
  private readonly selectGaps: Statement;
  private readonly insertBatch: (deviceId: string, events: readonly EventMessage[], at: number) => number;
  private readonly ingestAll: Transaction<(writes: readonly IngestWrite[], at: number) => number[]>;
  private readonly selectDesired: Statement;
  private readonly upsertDesired: Statement;
  private readonly claimDesired: Transaction<(deviceId: string, doc: DesiredState, at: number) => DesiredState>;
  private readonly claimDesiredMany: Transaction<(entries: ReadonlyArray<{ deviceId: string; doc: DesiredState }>, at: number) => DesiredState[]>;

  constructor(readonly file: string, opts: { readOnly?: boolean } = {}) {
    this.location = file;
    this.db = new Database(file, { readonly: opts.readOnly ?? false, fileMustExist: opts.readOnly ?? false });
    try {
      if (opts.readOnly) {
        this.db.pragma('busy_timeout = 5000');
      } else {
        applyPragmas(this.db, { busyTimeoutMs: 10_000 });
        migrate(this.db);
      }
    } catch (err) {
      this.db.close();
      // A file that is not a SQLite database, or a damaged one, is found here, on its first
      // read: a coded error naming the file, not PERCH_ERR_INTERNAL (docs/fleet.md "The fleet store").
      const code = (err as { code?: unknown }).code;
      if (code === 'SQLITE_NOTADB' || code === 'SQLITE_CORRUPT') {
        throw new PerchError('PERCH_ERR_STORE_UNAVAILABLE', `the fleet database ${file} cannot be read: ${(err as Error).message}`, { cause: err });
      }
      throw err;
    }
    // ON CONFLICT DO NOTHING: a redelivered (deviceId, seq) changes no row, so `changes` counts
    // what was new. The first copy wins; at-least-once redeliveries carry the same event.
    this.insertEvent = this.db.prepare(
      `INSERT INTO events (device_id, seq, event_id, ts, type, payload, received_at)
       VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (device_id, seq) DO NOTHING`,
    );
    this.upsertStatus = this.db.prepare(
      `INSERT INTO devices (device_id, online, status, status_at) VALUES (?, ?, ?, ?)
       ON CONFLICT (device_id) DO UPDATE SET online = excluded.online, status = excluded.status, status_at = excluded.status_at`,
    );
    this.upsertReported = this.db.prepare(
      `INSERT INTO devices (device_id, reported, reported_at) VALUES (?, ?, ?)
       ON CONFLICT (device_id) DO UPDATE SET reported = excluded.reported, reported_at = excluded.reported_at`,
    );
    this.selectEvents = this.db.prepare(
      `SELECT device_id, seq, event_id, ts, type, payload, received_at FROM events
       WHERE device_id = ? AND seq > ? ORDER BY seq LIMIT ?`,
    );
    const deviceSql = `SELECT d.device_id, d.online, d.status, d.reported,
        (SELECT COUNT(*) FROM events e WHERE e.device_id = d.device_id) AS event_count,
        (SELECT MAX(seq) FROM events e WHERE e.device_id = d.device_id) AS last_seq
      FROM devices d`;
    this.selectDevice = this.db.prepare(`${deviceSql} WHERE d.device_id = ?`);
    this.selectDevices = this.db.prepare(`${deviceSql} ORDER BY d.device_id`);
    // Ids as one JSON array parameter: any number of them, one prepared statement.
    this.selectViews = this.db.prepare('SELECT device_id, online, reported FROM devices WHERE device_id IN (SELECT value FROM json_each(?))');
    this.selectFirstSeq = this.db.prepare('SELECT MIN(seq) FROM events WHERE device_id = ?').pluck();
    // The end of the first run: the first held seq whose successor is not held (index probes in seq order).
    this.selectRunEnd = this.db.prepare(
      `SELECT seq FROM events e WHERE device_id = ?
       AND NOT EXISTS (SELECT 1 FROM events n WHERE n.device_id = e.device_id AND n.seq = e.seq + 1)
       ORDER BY seq LIMIT 1`,
    ).pluck();
    this.selectGaps = this.db.prepare(
      `SELECT prev + 1 AS "from", seq - 1 AS "to" FROM
         (SELECT seq, lag(seq) OVER (ORDER BY seq) AS prev FROM events WHERE device_id = ?)
       WHERE seq - prev > 1 ORDER BY seq`,
    ).raw();
    this.selectDesired = this.db.prepare('SELECT version, doc FROM desired WHERE device_id = ?');
    this.upsertDesired = this.db.prepare(
      `INSERT INTO desired (device_id, version, doc, published_at) VALUES (?, ?, ?, ?)
       ON CONFLICT (device_id) DO UPDATE SET version = excluded.version, doc = excluded.doc, published_at = excluded.published_at`,
    );
    // IMMEDIATE: two pushes for one device at the same moment get two versions, never one twice.
    this.claimDesired = this.db.transaction((deviceId: string, doc: DesiredState, at: number) => {
      const stored = this.selectDesired.get(deviceId) as { version: number } | undefined;
      const claimed = { ...doc, version: Math.max(doc.version, (stored?.version ?? 0) + 1) };
      this.upsertDesired.run(deviceId, claimed.version, JSON.stringify(claimed), at);
      return claimed;
    });
    // Nested in one outer transaction, each claim is a savepoint: one commit for all.
    this.claimDesiredMany = this.db.transaction((entries: ReadonlyArray<{ deviceId: string; doc: DesiredState }>, at: number) =>
      entries.map((e) => this.claimDesired(e.deviceId, e.doc, at)));
    const insertRows = (deviceId: string, events: readonly EventMessage[], at: number): number => {
      let stored = 0;
      for (const e of events) {
        const ts = typeof e.ts === 'number' ? String(e.ts) : e.ts;
        stored += this.insertEvent.run(deviceId, e.seq, e.id, ts, e.type, JSON.stringify(e.payload ?? null), at).changes;
      }
      return stored;
    };
    // One transaction per batch: one fsync for the whole batch.
    this.insertBatch = this.db.transaction(insertRows);
    // Group commit (docs/fleet.md "Group commit"): every write of the group in one transaction.
    this.ingestAll = this.db.transaction((writes: readonly IngestWrite[], at: number) => writes.map((w) => {
      if (w.kind === 'events') return insertRows(w.deviceId, w.events, at);
      if (w.kind === 'status') this.upsertStatus.run(w.deviceId, w.status === null ? null : w.status.online ? 1 : 0, w.json, at);
      else this.upsertReported.run(w.deviceId, w.json, at);
      return 0;
    }));
  }

  /** Opens (creating and migrating) `<store>/fleet.db`. */
  static open(store: string): SqliteFleetStore {
    mkdirSync(store, { recursive: true });
    return new SqliteFleetStore(join(store, DB_FILE));
  }

  /** Stores a batch; returns how many were new (the rest were duplicates). */
  async storeEvents(deviceId: string, events: readonly EventMessage[], receivedAt: number): Promise<{ stored: number; duplicates: number }> {
    const stored = this.insertBatch(deviceId, events, receivedAt);
    return { stored, duplicates: events.length - stored };
  }

  async recordStatus(deviceId: string, status: { online: boolean } | null, json: string | null, at: number): Promise<void> {
    this.upsertStatus.run(deviceId, status === null ? null : status.online ? 1 : 0, json, at);
  }

  async recordReported(deviceId: string, json: string | null, at: number): Promise<void> {
    this.upsertReported.run(deviceId, json, at);
  }

  async ingest(writes: readonly IngestWrite[], at: number): Promise<number[]> {
    return writes.length === 0 ? [] : this.ingestAll(writes, at);
  }

  /** Events of a device with seq > afterSeq, in seq order. */
  async events(deviceId: string, afterSeq: number, limit = 1000): Promise<StoredEvent[]> {
    const rows = this.selectEvents.all(deviceId, afterSeq, limit) as Array<{
      device_id: string; seq: number; event_id: string; ts: string; type: string; payload: string; received_at: number;
    }>;
    return rows.map((r) => ({
      deviceId: r.device_id,
      seq: r.seq,
      id: r.event_id,
      ts: /^\d+(\.\d+)?$/.test(r.ts) ? Number(r.ts) : r.ts,
      type: r.type,
      payload: JSON.parse(r.payload) as unknown,
      receivedAt: r.received_at,
    }));
  }

  /** The device's held seqs: first, highest contiguous, the first `maxGaps` gaps, missing count. */
  async heldSeqs(deviceId: string, maxGaps = 10): Promise<HeldSeqs> {
    const first = this.selectFirstSeq.get(deviceId) as number | null;
    if (first === null) return { firstSeq: null, contiguousSeq: null, gaps: [], missing: 0 };
    const gaps: [number, number][] = [];
    let missing = 0;
    for (const [from, to] of this.selectGaps.iterate(deviceId) as IterableIterator<[number, number]>) {
      missing += to - from + 1;
      if (gaps.length < maxGaps) gaps.push([from, to]);
    }
    return { firstSeq: first, contiguousSeq: this.selectRunEnd.get(deviceId) as number, gaps, missing };
  }

  /** The desired document the fleet last published for a device (its version is the counter). */
  async desired(deviceId: string): Promise<DesiredState | undefined> {
    const row = this.selectDesired.get(deviceId) as { version: number; doc: string } | undefined;
    if (!row) return undefined;
    const parsed = desiredSchema.safeParse(JSON.parse(row.doc));
    return parsed.success ? parsed.data : undefined;
  }

  /**
   * Records `doc` as the device's desired document before it is published, with its version
   * raised above the stored one if another push took that number meanwhile; returns what to publish.
   */
  async recordDesired(deviceId: string, doc: DesiredState, at: number): Promise<DesiredState> {
    return this.claimDesired.immediate(deviceId, doc, at);
  }

  async recordDesiredMany(entries: ReadonlyArray<{ deviceId: string; doc: DesiredState }>, at: number): Promise<DesiredState[]> {
    return entries.length === 0 ? [] : this.claimDesiredMany.immediate(entries, at);
  }

  async device(deviceId: string): Promise<DeviceRow | undefined> {
    const row = this.selectDevice.get(deviceId) as RawDeviceRow | undefined;
    return row ? toDeviceRow(row) : undefined;
  }

  async devices(): Promise<DeviceRow[]> {
    return (this.selectDevices.all() as RawDeviceRow[]).map(toDeviceRow);
  }

  async deviceViews(deviceIds: readonly string[]): Promise<Map<string, DeviceView>> {
    const out = new Map<string, DeviceView>();
    if (deviceIds.length === 0) return out;
    for (const r of this.selectViews.all(JSON.stringify(deviceIds)) as Array<{ device_id: string; online: number | null; reported: string | null }>) {
      out.set(r.device_id, { online: r.online === null ? null : r.online === 1, reported: r.reported === null ? null : (JSON.parse(r.reported) as unknown) });
    }
    return out;
  }

  /** The rollout tables (rollout-store.ts, sqlite-rollouts.ts). */
  get rollouts(): RolloutStore {
    return (this.rolloutTables ??= new SqliteRollouts(this.db));
  }

  async close(): Promise<void> {
    this.db.close();
  }
}

interface RawDeviceRow {
  device_id: string;
  online: number | null;
  status: string | null;
  reported: string | null;
  event_count: number;
  last_seq: number | null;
}

function toDeviceRow(r: RawDeviceRow): DeviceRow {
  return {
    deviceId: r.device_id,
    online: r.online === null ? null : r.online === 1,
    status: r.status === null ? null : (JSON.parse(r.status) as unknown),
    reported: r.reported === null ? null : (JSON.parse(r.reported) as unknown),
    eventCount: r.event_count,
    lastSeq: r.last_seq,
  };
}
