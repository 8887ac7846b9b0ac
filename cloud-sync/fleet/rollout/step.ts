// One step of a rollout (docs/fleet.md "Rollouts"), as a pure function of the stored rollout, its
// devices, what the fleet store last heard from each device, and the time: which devices get
// the version now, which passed or failed, whether the wave is done, whether to abort, and the
// rollbacks after an abort. The controller (serve/rollout-controller.ts) runs the actions it
// returns and saves the result; keeping the decisions here makes them testable with a fake clock.
import type { ReportedState } from '../../protocol/schemas.js';
import { ignoredDetail } from '../broker/wait-outcome.js';
import type { RolloutDevice, RolloutRecord, Wave } from '../store/rollout-store.js';

/** What the fleet store last heard from a device. */
export interface DeviceView {
  online: boolean | null;
  reported: ReportedState | null;
}

export type RolloutAction =
  /** Publish the rollout's spec to this device (its previous spec and active version recorded first). */
  | { kind: 'update'; deviceId: string; previousActive: { version: number; sha256: string } | null }
  /** Publish the device's previous spec again (null spec: remove the model it did not have). */
  | { kind: 'restore'; deviceId: string }
  /** The device serves the rollout's version: the `rollback` command brings the previous one back (attempt 1, 2, ...). */
  | { kind: 'rollback-command'; deviceId: string; attempt: number };

/**
 * A rollback command with no effect after this long is sent again (MQTT QoS 1 reaches a
 * connected session, but a device that restarts meanwhile, or a broker that loses its queue,
 * drops it): until the device reports its previous version.
 */
export const ROLLBACK_RETRY_MS = 30_000;

export interface StepResult {
  rollout: RolloutRecord;
  /** Device records that changed (the controller saves these). */
  changed: Map<string, RolloutDevice>;
  actions: RolloutAction[];
}

type ReportedModel = ReportedState['models'][string];

function entryOf(view: DeviceView | undefined, model: string): ReportedModel | undefined {
  const models = view?.reported?.models;
  return models && Object.hasOwn(models, model) ? models[model] : undefined;
}

/** The version (and digest) of the model the device serves, per its reported state. */
export function activeOf(entry: ReportedModel | undefined): { version: number; sha256: string } | null {
  if (!entry) return null;
  if (entry.status === 'active') return { version: entry.version, sha256: entry.sha256 };
  return entry.active ?? null;
}

/**
 * Characters of a failed device's `error` kept, at most: the device's own words, up to its
 * message size, are stored in the rollout's device record and logged; one device's 900 KB message
 * would be that much in each (docs/fleet.md "Rollouts").
 */
export const MAX_DEVICE_ERROR = 1000;

function fail(d: RolloutDevice, error: string): RolloutDevice {
  if (error.length <= MAX_DEVICE_ERROR) return { ...d, status: 'failed', error };
  const head = error.slice(0, MAX_DEVICE_ERROR - 1);
  return { ...d, status: 'failed', error: `${/[\ud800-\udbff]$/.test(head) ? head.slice(0, -1) : head}…` };
}

/** Where an updating or active device stands against the rollout's version. */
function judge(r: RolloutRecord, d: RolloutDevice, view: DeviceView | undefined, now: number): RolloutDevice {
  const reported = view?.reported ?? null;
  if (reported?.ignored && d.desiredVersion !== null && reported.ignored.version === d.desiredVersion) {
    return fail(d, `ignored: ${ignoredDetail(reported.ignored)}`);
  }
  const entry = entryOf(view, r.model);
  if (!entry || entry.version !== r.version) return d.status === 'updating' ? d : { ...d, status: 'updating' };
  if (entry.status === 'failed') return fail({ ...d, version: r.version }, entry.error ? `${entry.error.code}: ${entry.error.message}` : 'failed');
  if (entry.status !== 'active') return d.status === 'updating' ? d : { ...d, status: 'updating' };
  const next: RolloutDevice = { ...d, status: 'active', version: r.version, activeSince: d.activeSince ?? now };
  const health = reported?.health?.models[r.model]?.[String(r.version)];
  if (health && r.healthErrorRate !== null && health.errorRate > r.healthErrorRate) {
    return fail(next, `in-service error rate ${health.errorRate.toFixed(4)} over ${r.healthErrorRate} (${health.errors} of ${health.requests} requests)`);
  }
  if (health && r.healthP99Ms !== null && health.p99Ms !== null && health.p99Ms > r.healthP99Ms) {
    return fail(next, `in-service p99 latency ${health.p99Ms} ms over ${r.healthP99Ms} ms`);
  }
  if (!next.passed && now - (next.activeSince as number) >= r.bakeMs) next.passed = true;
  return next;
}

/** Where a device that got the version stands in its rollback after an abort. */
function rollBack(r: RolloutRecord, d: RolloutDevice, view: DeviceView | undefined, now: number, actions: RolloutAction[]): RolloutDevice {
  if (d.desiredVersion === null || d.status === 'rolled-back') return d;
  const entry = entryOf(view, r.model);
  const active = activeOf(entry);
  const onVersion = active?.version === r.version;
  if (d.rollback === 'none' || d.rollback === 'command-sent') {
    if (onVersion) {
      const sentAt = d.rollbackSentAt ?? null;
      if (d.rollback === 'none' || sentAt === null || now - sentAt >= ROLLBACK_RETRY_MS) {
        const attempt = (d.rollbackAttempts ?? (d.rollback === 'none' ? 0 : 1)) + 1;
        actions.push({ kind: 'rollback-command', deviceId: d.deviceId, attempt });
        return { ...d, rollback: 'command-sent', rollbackSentAt: now, rollbackAttempts: attempt };
      }
      return d;
    }
    actions.push({ kind: 'restore', deviceId: d.deviceId });
    return { ...d, rollback: 'restored' };
  }
  // Restored: done once the device serves what it served before (or nothing, if it had nothing).
  const back = d.previousActive === null ? entry === undefined : active?.version === d.previousActive.version && !onVersion;
  return back ? { ...d, status: 'rolled-back', version: d.previousActive?.version ?? null, error: d.error } : d;
}

/**
 * The devices whose view (online, reported) a step of `r` can use: in a running rollout those
 * of the waves started or about to start that are not settled (pending, updating, active and
 * baking); in an aborted one those reached and not yet rolled back. The rest are left unread,
 * so a tick costs what is in play, not the whole fleet.
 */
export function devicesInPlay(r: RolloutRecord, devices: readonly RolloutDevice[]): string[] {
  if (r.state === 'aborted') return devices.filter((d) => d.desiredVersion !== null && d.status !== 'rolled-back').map((d) => d.deviceId);
  if (r.state !== 'running') return [];
  const current = r.waves.findIndex((w) => w.state !== 'passed');
  if (current < 0) return [];
  return devices
    .filter((d) => d.wave <= current + 1 && (d.status === 'pending' || d.status === 'updating' || (d.status === 'active' && !d.passed)))
    .map((d) => d.deviceId);
}

export function stepRollout(r: RolloutRecord, devices: readonly RolloutDevice[], views: ReadonlyMap<string, DeviceView>, now: number): StepResult {
  const rollout: RolloutRecord = { ...r, waves: r.waves.map((w) => ({ ...w })) };
  const changed = new Map<string, RolloutDevice>();
  const actions: RolloutAction[] = [];
  const current = new Map(devices.map((d) => [d.deviceId, d]));
  const set = (d: RolloutDevice): void => {
    if (JSON.stringify(d) !== JSON.stringify(current.get(d.deviceId))) {
      changed.set(d.deviceId, d);
      current.set(d.deviceId, d);
    }
  };

  if (rollout.state === 'running') {
    // Judge every device that got the version.
    for (const d of current.values()) {
      if (d.status === 'updating' || (d.status === 'active' && !d.passed)) set(judge(rollout, d, views.get(d.deviceId), now));
    }
    // Reached: sent the version, or failed without it (offline past --offline-timeout).
    const reached = [...current.values()].filter((d) => d.desiredVersion !== null || d.status === 'failed');
    const failed = reached.filter((d) => d.status === 'failed').length;
    if (reached.length > 0 && (failed * 100) / reached.length > rollout.maxFailuresPercent) {
      rollout.state = 'aborted';
      rollout.reason = `${failed} of ${reached.length} devices reached failed (${((failed * 100) / reached.length).toFixed(1)} % > --max-failures ${rollout.maxFailuresPercent} %)`;
    } else {
      let w = rollout.waves.findIndex((x) => x.state !== 'passed');
      // A wave is done when each of its devices passed or failed; then the next one starts.
      while (w >= 0) {
        const wave = rollout.waves[w] as Wave;
        if (wave.state === 'pending') {
          wave.state = 'running';
          wave.startedAt = now;
        }
        const mine = [...current.values()].filter((d) => d.wave === w);
        const timeout = rollout.offlineTimeoutMs ?? null;
        for (const d of mine) {
          if (d.status !== 'pending' || d.desiredVersion !== null) continue;
          if (views.get(d.deviceId)?.online === true) {
            actions.push({ kind: 'update', deviceId: d.deviceId, previousActive: activeOf(entryOf(views.get(d.deviceId), rollout.model)) });
          } else if (timeout !== null && now - (wave.startedAt ?? now) >= timeout) {
            // --offline-timeout: the operator asked for an offline device to count as failed.
            const failed = fail(d, `offline for ${Math.round((now - (wave.startedAt ?? now)) / 1000)} s since its wave started (--offline-timeout)`);
            set(failed);
          }
          // Else offline devices stay pending; they get the version when they are back.
        }
        if (!mine.every((d) => (d.status === 'active' && d.passed) || d.status === 'failed')) break;
        wave.state = 'passed';
        w = w + 1 < rollout.waves.length ? w + 1 : -1;
      }
      if (w < 0) {
        rollout.state = 'completed';
        rollout.settled = true;
      }
    }
  }

  if (rollout.state === 'aborted') {
    for (const wave of rollout.waves) if (wave.state !== 'passed') wave.state = 'aborted';
    for (const d of current.values()) set(rollBack(rollout, d, views.get(d.deviceId), now, actions));
    rollout.settled = [...current.values()].every((d) => d.desiredVersion === null || d.status === 'rolled-back');
  }
  rollout.updatedAt = JSON.stringify({ ...rollout, updatedAt: 0 }) === JSON.stringify({ ...r, updatedAt: 0 }) && changed.size === 0 ? r.updatedAt : now;
  return { rollout, changed, actions };
}
