// What the fleet store keeps of rollouts (docs/fleet.md "Rollouts"): one record per rollout and one
// per device it targets. The controller (serve/rollout-controller.ts) and the `rollout` commands
// use only these methods, never SQL, so every store implementation (SQLite, PostgreSQL) holds
// them the same way. Changes are guarded: a rollout record carries a revision that every save
// must name (a save from a stale copy changes nothing), and only the worker holding a rollout's
// lease drives it (claimRollouts takes expired or free leases atomically).
import type { ModelSpec } from '../../protocol/schemas.js';

export const ROLLOUT_STATES = ['running', 'paused', 'completed', 'aborted'] as const;
export type RolloutState = (typeof ROLLOUT_STATES)[number];
export const WAVE_STATES = ['pending', 'running', 'passed', 'aborted'] as const;
export type WaveState = (typeof WAVE_STATES)[number];
export const DEVICE_STATUSES = ['pending', 'updating', 'active', 'failed', 'rolled-back'] as const;
export type RolloutDeviceStatus = (typeof DEVICE_STATUSES)[number];

export interface Wave {
  /** Devices in this wave (cumulative target minus the waves before). */
  size: number;
  state: WaveState;
  /** When (fleet clock, ms) the wave started: --offline-timeout counts from here. Absent in records from before it. */
  startedAt?: number | null;
}

export interface RolloutRecord {
  id: string;
  model: string;
  version: number;
  spec: ModelSpec;
  /** The targeting the rollout was started with, as typed (for `status` and `list`). */
  target: string;
  waves: Wave[];
  bakeMs: number;
  /** Abort once failed devices exceed this percentage of the devices reached so far. */
  maxFailuresPercent: number;
  /** A device whose reported in-service error rate for the version exceeds this fails (null: not checked). */
  healthErrorRate: number | null;
  /** ... or whose reported p99 latency in ms exceeds this (null: not checked). */
  healthP99Ms: number | null;
  /**
   * A device of a started wave still offline (never sent the version) this long after the wave
   * started fails (`rollout start --offline-timeout`); null or absent: it stays pending.
   */
  offlineTimeoutMs?: number | null;
  state: RolloutState;
  /** Why it aborted (set with state 'aborted'). */
  reason: string | null;
  /** Nothing left to drive: completed, or aborted with every rollback done. */
  settled: boolean;
  createdAt: number;
  updatedAt: number;
  /** Raised by every save; a save names the revision it started from. */
  revision: number;
}

/** Where a device's rollback stands once the rollout aborted. */
export type RollbackPhase = 'none' | 'command-sent' | 'restored';

export interface RolloutDevice {
  deviceId: string;
  /** Index into the rollout's waves. */
  wave: number;
  status: RolloutDeviceStatus;
  /** The version the device reports for the model (the rollout's once it is on it). */
  version: number | null;
  error: string | null;
  /** The model's spec in the device's desired document before the rollout (null: none). */
  previousSpec: ModelSpec | null;
  /** The version (and digest) the device served before the rollout (null: none). */
  previousActive: { version: number; sha256: string } | null;
  /** The desired version the rollout published to this device (null: not yet). */
  desiredVersion: number | null;
  /** When (fleet clock, ms) it was first seen with the version active: the bake starts there. */
  activeSince: number | null;
  /** Active and healthy for the whole bake time. */
  passed: boolean;
  rollback: RollbackPhase;
  /** When the last rollback command went out (fleet clock, ms), and how many went: a lost one is sent again. */
  rollbackSentAt?: number | null;
  rollbackAttempts?: number;
}

export interface RolloutStore {
  /** Stores a new rollout and its devices in one transaction. */
  createRollout(rollout: RolloutRecord, devices: readonly RolloutDevice[]): Promise<void>;
  rollout(id: string): Promise<RolloutRecord | undefined>;
  /** Every rollout, newest first. */
  list(): Promise<RolloutRecord[]>;
  rolloutDevices(id: string): Promise<RolloutDevice[]>;
  /**
   * Saves `rollout` (its fields but id, createdAt and revision) and `devices` in one transaction
   * if the stored revision is still `rollout.revision`; returns the new revision, or null when
   * another writer saved first (nothing is changed then).
   */
  saveRollout(rollout: RolloutRecord, devices: readonly RolloutDevice[]): Promise<number | null>;
  /**
   * The `rollout pause|resume|abort` commands: sets `state` (and `reason`, and settled = false)
   * if the stored state is one of `from`, raising the revision, so the controller's next save
   * from its older copy is refused and it reads this one. Returns the stored record afterwards
   * and whether it changed (undefined: no such rollout).
   */
  setRolloutState(id: string, to: RolloutState, from: readonly RolloutState[], reason: string | null, now: number): Promise<{ changed: boolean; rollout: RolloutRecord } | undefined>;
  /**
   * Takes (or renews) the lease of every rollout that is neither settled nor paused, whose lease is free, expired at `now`, or already `owner`'s; returns
   * their ids. Atomic per rollout: two workers never hold one lease at once.
   */
  claimRollouts(owner: string, now: number, leaseMs: number): Promise<string[]>;
  /** Gives a lease back (a worker stopping, or a rollout that needs no more driving). */
  releaseRollout(id: string, owner: string): Promise<void>;
}
