// The fleet store: what `perch fleet` keeps about devices (events deduplicated on
// (deviceId, seq), last status and reported state, the desired document the fleet published).
// Every method returns a Promise so one interface covers the embedded SQLite file
// (sqlite-store.ts, the default) and a database server shared by serve workers on several hosts.
// Callers hold a FleetStore and never SQL; a new method goes here first, then into every
// implementation, and into the shared store suite (test/fleet/store-suite.ts).
import type { DesiredState, EventMessage } from '../../protocol/schemas.js';
import type { RolloutStore } from './rollout-store.js';

export interface StoredEvent {
  deviceId: string;
  seq: number;
  id: string;
  ts: number | string;
  type: string;
  payload: unknown;
  receivedAt: number;
}

export interface DeviceRow {
  deviceId: string;
  online: boolean | null;
  status: unknown;
  reported: unknown;
  eventCount: number;
  lastSeq: number | null;
}

/** What the rollout controller reads of a device: its last online flag and reported state, nothing else. */
export interface DeviceView {
  online: boolean | null;
  reported: unknown;
}

/** What the fleet holds of one device's seqs (`perch fleet devices`). */
export interface HeldSeqs {
  /** Lowest seq held (null when none). */
  firstSeq: number | null;
  /** Highest seq such that every seq from firstSeq up to it is held. */
  contiguousSeq: number | null;
  /** Missing ranges between held seqs, oldest first, at most the limit asked for. */
  gaps: [number, number][];
  /** Every missing seq between firstSeq and the highest held. */
  missing: number;
}

/**
 * One write of what serve ingests (docs/fleet.md "Group commit"): an event batch, a status or a
 * reported state of one device, as the separate methods below take them.
 */
export type IngestWrite =
  | { kind: 'events'; deviceId: string; events: readonly EventMessage[] }
  | { kind: 'status'; deviceId: string; status: { online: boolean } | null; json: string | null }
  | { kind: 'reported'; deviceId: string; json: string | null };

export interface FleetStore {
  /** Where the data lives, for log lines and errors (a file path, or a server URL without password). */
  readonly location: string;

  /** The rollout tables (rollout-store.ts), on the same database. */
  readonly rollouts: RolloutStore;

  /**
   * Stores a batch in one transaction; returns how many were new (the rest were duplicates).
   * The first copy of a (deviceId, seq) wins, whichever worker stored it.
   */
  storeEvents(deviceId: string, events: readonly EventMessage[], receivedAt: number): Promise<{ stored: number; duplicates: number }>;

  /** The device's last status (`status` null with `json` null: a cleared retained message). */
  recordStatus(deviceId: string, status: { online: boolean } | null, json: string | null, at: number): Promise<void>;

  recordReported(deviceId: string, json: string | null, at: number): Promise<void>;

  /**
   * Several writes in ONE transaction (one commit, one fsync), applied in order, as
   * storeEvents / recordStatus / recordReported would apply them one by one. Returns, per write,
   * how many events it stored (new ones; 0 for status and reported). All or nothing: when it
   * rejects, none of the writes is stored.
   */
  ingest(writes: readonly IngestWrite[], at: number): Promise<number[]>;

  /** Events of a device with seq > afterSeq, in seq order, at most `limit` (default 1000). */
  events(deviceId: string, afterSeq: number, limit?: number): Promise<StoredEvent[]>;

  /** The device's held seqs: first, highest contiguous, the first `maxGaps` gaps (default 10), missing count. */
  heldSeqs(deviceId: string, maxGaps?: number): Promise<HeldSeqs>;

  /** The desired document the fleet last published for a device (its version is the counter). */
  desired(deviceId: string): Promise<DesiredState | undefined>;

  /**
   * Records `doc` as the device's desired document before it is published, atomically raising
   * its version above the stored one if another push took that number meanwhile; returns what
   * to publish. Two concurrent calls for one device never get the same version.
   */
  recordDesired(deviceId: string, doc: DesiredState, at: number): Promise<DesiredState>;

  /**
   * recordDesired for many devices in one transaction (one commit, one fsync): a rollout wave
   * of thousands. Same guarantee per device; returns the documents to publish, in order.
   */
  recordDesiredMany(entries: ReadonlyArray<{ deviceId: string; doc: DesiredState }>, at: number): Promise<DesiredState[]>;

  device(deviceId: string): Promise<DeviceRow | undefined>;

  /** Every device, ordered by id. */
  devices(): Promise<DeviceRow[]>;

  /**
   * Online flag and reported state of just these devices (those the fleet store knows; no event
   * counts): what the rollout controller reads each tick, for the devices of a rollout still in play.
   */
  deviceViews(deviceIds: readonly string[]): Promise<Map<string, DeviceView>>;

  close(): Promise<void>;
}
