// The rollout controller of `perch fleet serve` (docs/fleet.md "Rollouts"). Every tick it claims
// the lease of each rollout that needs driving (the store takes leases atomically, so several
// serve workers never drive one rollout at once), reads what the fleet store last heard from the
// rollout's devices, lets rollout/step.ts decide, publishes what that says (desired documents,
// rollback commands) and saves the result guarded by the rollout's revision. All state is in the
// fleet store: a serve that restarts, or another worker whose lease comes up, goes on from there.
import { randomUUID } from 'node:crypto';
import type { MqttClient } from 'mqtt';
import type { Clock, TimerHandle } from '../../../runtime/base/clock.js';
import type { Logger } from '../../../runtime/base/log.js';
import type { DesiredState, ModelSpec, ReportedState } from '../../protocol/schemas.js';
import { topics } from '../../protocol/topics.js';
import { nextDesired, publishDesired } from '../broker/desired.js';
import type { FleetStore } from '../store/fleet-store.js';
import type { RolloutDevice, RolloutRecord } from '../store/rollout-store.js';
import { readSpec } from '../store/model-store.js';
import { stepRollout, type DeviceView, type RolloutAction } from '../rollout/step.js';


export interface RolloutControllerOptions {
  store: FleetStore;
  /** Fleet store folder (model specs, to restore a device's previous version by its spec). */
  storeDir: string;
  client: MqttClient;
  prefix: string;
  log: Logger;
  clock: Clock;
  /** Who holds leases: stable per worker (the MQTT client id), else random per process. */
  owner?: string;
  tickMs?: number;
  leaseMs?: number;
}

export const DEFAULT_TICK_MS = 1000;
export const DEFAULT_LEASE_MS = 15_000;

export class RolloutController {
  readonly owner: string;
  private timer: TimerHandle | null = null;
  private running: Promise<void> | null = null;
  private stopped = false;
  private readonly tickMs: number;
  private readonly leaseMs: number;
  /** Rollouts this worker drove on its last tick, to give their leases back at stop. */
  private held = new Set<string>();

  constructor(private readonly o: RolloutControllerOptions) {
    this.owner = o.owner ?? `fleet-${randomUUID()}`;
    this.tickMs = o.tickMs ?? DEFAULT_TICK_MS;
    this.leaseMs = o.leaseMs ?? DEFAULT_LEASE_MS;
  }

  start(): void {
    this.schedule(0);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) this.o.clock.clearTimeout(this.timer);
    this.timer = null;
    await this.running;
    for (const id of this.held) await this.o.store.releaseRollout(id, this.owner);
    this.held.clear();
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    this.timer = this.o.clock.setTimeout(() => {
      this.running = this.tick()
        .catch((err: unknown) => this.o.log.error({ err }, 'rollout tick failed'))
        .finally(() => {
          this.running = null;
          this.schedule(this.tickMs);
        });
    }, ms);
  }

  /** One pass over every rollout this worker can claim. Public for tests driving the clock. */
  async tick(): Promise<void> {
    const now = this.o.clock.wallNow();
    const ids = await this.o.store.claimRollouts(this.owner, now, this.leaseMs);
    this.held = new Set(ids);
    if (ids.length === 0) return;
    const views = new Map<string, DeviceView>();
    for (const row of await this.o.store.devices()) {
      views.set(row.deviceId, { online: row.online, reported: (row.reported ?? null) as ReportedState | null });
    }
    for (const id of ids) {
      if (this.stopped) return;
      await this.drive(id, views, now);
    }
  }

  private async drive(id: string, views: ReadonlyMap<string, DeviceView>, now: number): Promise<void> {
    const r = await this.o.store.rollout(id);
    if (!r) return;
    const devices = await this.o.store.rolloutDevices(id);
    const step = stepRollout(r, devices, views, now);
    const byId = new Map(devices.map((d) => [d.deviceId, d]));
    for (const a of step.actions) {
      const d = step.changed.get(a.deviceId) ?? byId.get(a.deviceId);
      if (!d) continue;
      try {
        const after = await this.act(step.rollout, d, a, views.get(a.deviceId));
        step.changed.set(a.deviceId, after);
      } catch (err) {
        // Not fatal: the next tick tries again (the device record says where it stands).
        this.o.log.warn({ err, rollout: id, deviceId: a.deviceId, action: a.kind }, 'rollout action failed');
        if (a.kind !== 'update') step.changed.set(a.deviceId, { ...d, rollback: byId.get(a.deviceId)?.rollback ?? 'none' });
      }
    }
    const changedDevices = [...step.changed.values()];
    const saved = await this.o.store.saveRollout(step.rollout, changedDevices);
    if (saved === null) {
      // A `rollout pause|resume|abort` changed the record meanwhile: keep what happened to the
      // devices (their records are only ever written here) and decide again next tick.
      const fresh = await this.o.store.rollout(id);
      if (fresh) await this.o.store.saveRollout(fresh, changedDevices);
      return;
    }
    if (step.rollout.state !== r.state) this.o.log.info({ rollout: id, state: step.rollout.state, reason: step.rollout.reason }, 'rollout state');
    for (const [i, w] of step.rollout.waves.entries()) {
      if (w.state !== r.waves[i]?.state) this.o.log.info({ rollout: id, wave: i, size: w.size, state: w.state }, 'rollout wave');
    }
    for (const d of changedDevices) {
      if (d.status !== byId.get(d.deviceId)?.status) this.o.log.info({ rollout: id, deviceId: d.deviceId, status: d.status, error: d.error }, 'rollout device');
    }
    if (step.rollout.settled) await this.o.store.releaseRollout(id, this.owner);
  }

  private async act(r: RolloutRecord, d: RolloutDevice, a: RolloutAction, view: DeviceView | undefined): Promise<RolloutDevice> {
    if (a.kind === 'rollback-command') {
      const cmd = { id: `rollout-${r.id}-${d.deviceId}`, command: 'rollback', args: { model: r.model } };
      await this.o.client.publishAsync(topics(this.o.prefix, d.deviceId).commands, JSON.stringify(cmd), { qos: 1 });
      this.o.log.info({ rollout: r.id, deviceId: d.deviceId, model: r.model }, 'rollback command sent');
      return d;
    }
    if (a.kind === 'restore') {
      const spec = d.previousSpec ?? this.pinSpec(r.model, d.previousActive);
      const doc = await this.publish(d.deviceId, view, (doc) => {
        doc.models[r.model] = spec;
      });
      this.o.log.info({ rollout: r.id, deviceId: d.deviceId, model: r.model, version: spec?.version ?? null, desiredVersion: doc.version }, 'previous version restored in desired state');
      return d;
    }
    const stored = await this.o.store.desired(d.deviceId);
    const previousSpec = stored?.models[r.model] ?? null;
    const doc = await this.publish(d.deviceId, view, (doc) => {
      doc.models[r.model] = r.spec;
    });
    return { ...d, status: 'updating', desiredVersion: doc.version, previousSpec, previousActive: a.previousActive };
  }

  /**
   * The spec that names what a device served before, for a device whose previous version did not
   * come from the fleet (it shipped in its repository): the fleet store's spec of that version
   * when it holds the same file, else version and digest alone. The device serves exactly that,
   * so it downloads nothing (docs/fleet.md "Rollouts"). Null: the device had no version; the
   * model is removed.
   */
  private pinSpec(model: string, active: { version: number; sha256: string } | null): ModelSpec | null {
    if (!active) return null;
    try {
      const spec = readSpec(this.o.storeDir, model, active.version);
      if (spec.sha256 === active.sha256) return spec;
    } catch {
      // Not in the fleet store.
    }
    return { version: active.version, sha256: active.sha256, size: 0, chunkSize: 1 };
  }

  /** Read-modify-publish from the fleet store's own copy and counter (no retained read: a rollout publishes to many devices). */
  private async publish(deviceId: string, view: DeviceView | undefined, change: (doc: DesiredState) => void): Promise<DesiredState> {
    const stored = await this.o.store.desired(deviceId);
    const floor = Math.max(stored?.version ?? 0, view?.reported?.desiredVersion ?? 0);
    const next = await this.o.store.recordDesired(deviceId, nextDesired(stored, change, floor), this.o.clock.wallNow());
    await publishDesired(this.o.client, this.o.prefix, deviceId, next);
    return next;
  }
}
