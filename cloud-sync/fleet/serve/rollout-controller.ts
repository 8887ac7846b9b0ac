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
import { devicesInPlay, stepRollout, type DeviceView, type RolloutAction } from '../rollout/step.js';


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
/** Desired documents and commands in flight at once per rollout step. */
export const ACTION_CONCURRENCY = 64;
/** Devices whose desired documents are recorded in one store transaction. */
export const UPDATE_BATCH = 500;

async function eachLimited<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) await fn(items[next++] as T);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

export class RolloutController {
  readonly owner: string;
  private timer: TimerHandle | null = null;
  private running: Promise<void> | null = null;
  private stopped = false;
  private readonly tickMs: number;
  private readonly leaseMs: number;
  /** Rollouts this worker drove on its last tick, to give their leases back at stop. */
  private held = new Set<string>();
  /** The device records of each rollout held, as saved at `revision` by this worker. */
  private readonly cache = new Map<string, { revision: number; devices: RolloutDevice[] }>();

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
    for (const id of this.held) await this.o.store.rollouts.releaseRollout(id, this.owner);
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
    const ids = await this.o.store.rollouts.claimRollouts(this.owner, now, this.leaseMs);
    this.held = new Set(ids);
    for (const id of this.cache.keys()) if (!this.held.has(id)) this.cache.delete(id);
    for (const id of ids) {
      if (this.stopped) return;
      await this.drive(id, now);
    }
  }

  /**
   * One step of one rollout. Reads only what the step can use (docs/fleet.md "Rollouts", at
   * 10,000 devices): the device records come from this worker's cache while the rollout's
   * revision is the one it saved last (only the lease holder writes them), and the views
   * (online, reported) of just the devices still in play; an abort decided in this step reads
   * those of every device reached, since each must be rolled back.
   */
  private async drive(id: string, now: number): Promise<void> {
    const r = await this.o.store.rollouts.rollout(id);
    if (!r) return;
    const cached = this.cache.get(id);
    const devices = cached && cached.revision === r.revision ? cached.devices : await this.o.store.rollouts.rolloutDevices(id);
    let views = await this.views(devicesInPlay(r, devices));
    let step = stepRollout(r, devices, views, now);
    if (step.rollout.state === 'aborted' && r.state !== 'aborted') {
      views = new Map([...views, ...(await this.views(devices.filter((d) => d.desiredVersion !== null).map((d) => d.deviceId)))]);
      step = stepRollout(r, devices, views, now);
    }
    const byId = new Map(devices.map((d) => [d.deviceId, d]));
    const updates = step.actions.filter((a): a is Extract<RolloutAction, { kind: 'update' }> => a.kind === 'update');
    for (let i = 0; i < updates.length; i += UPDATE_BATCH) {
      if (this.stopped) break;
      await this.sendUpdates(step.rollout, updates.slice(i, i + UPDATE_BATCH), step.changed, byId, views);
    }
    // In parallel (bounded): one PUBACK round trip per device, one at a time, made a wave of
    // thousands take minutes (bench/fleet-scale.ts).
    await eachLimited(step.actions.filter((a) => a.kind !== 'update'), ACTION_CONCURRENCY, async (a) => {
      const d = step.changed.get(a.deviceId) ?? byId.get(a.deviceId);
      if (!d) return;
      try {
        step.changed.set(a.deviceId, await this.act(step.rollout, d, a, views.get(a.deviceId)));
      } catch (err) {
        // Not fatal: the next tick tries again (the device record says where it stands).
        this.o.log.warn({ err, rollout: id, deviceId: a.deviceId, action: a.kind }, 'rollout action failed');
        const before = byId.get(a.deviceId);
        step.changed.set(a.deviceId, { ...d, rollback: before?.rollback ?? 'none', rollbackSentAt: before?.rollbackSentAt ?? null, rollbackAttempts: before?.rollbackAttempts ?? 0 });
      }
    });
    const changedDevices = [...step.changed.values()];
    const after = devices.map((d) => step.changed.get(d.deviceId) ?? d);
    let saved = await this.o.store.rollouts.saveRollout(step.rollout, changedDevices);
    if (saved === null) {
      // A `rollout pause|resume|abort` changed the record meanwhile: keep what happened to the
      // devices (their records are only ever written here) and decide again next tick.
      const fresh = await this.o.store.rollouts.rollout(id);
      saved = fresh ? await this.o.store.rollouts.saveRollout(fresh, changedDevices) : null;
      if (saved === null) this.cache.delete(id);
      else this.cache.set(id, { revision: saved, devices: after });
      return;
    }
    this.cache.set(id, { revision: saved, devices: after });
    if (step.rollout.state !== r.state) this.o.log.info({ rollout: id, state: step.rollout.state, reason: step.rollout.reason }, 'rollout state');
    for (const [i, w] of step.rollout.waves.entries()) {
      if (w.state !== r.waves[i]?.state) this.o.log.info({ rollout: id, wave: i, size: w.size, state: w.state }, 'rollout wave');
    }
    for (const d of changedDevices) {
      if (d.status !== byId.get(d.deviceId)?.status) this.o.log.info({ rollout: id, deviceId: d.deviceId, status: d.status, error: d.error }, 'rollout device');
    }
    if (step.rollout.settled) {
      await this.o.store.rollouts.releaseRollout(id, this.owner);
      this.cache.delete(id);
    }
  }

  private async views(ids: readonly string[]): Promise<Map<string, DeviceView>> {
    const out = new Map<string, DeviceView>();
    for (const [id, v] of await this.o.store.deviceViews(ids)) out.set(id, { online: v.online, reported: (v.reported ?? null) as ReportedState | null });
    return out;
  }

  private async act(r: RolloutRecord, d: RolloutDevice, a: RolloutAction, view: DeviceView | undefined): Promise<RolloutDevice> {
    if (a.kind === 'rollback-command') {
      // args.version: the device refuses it unless r.version serves (PERCH_ERR_ROLLBACK_STALE), so an
      // attempt delayed past the rollback, or a later install, never rolls back again (docs/protocol.md section 5).
      const cmd = { id: `rollout-${r.id}-${d.deviceId}${a.attempt > 1 ? `-${a.attempt}` : ''}`, command: 'rollback', args: { model: r.model, version: r.version } };
      await this.o.client.publishAsync(topics(this.o.prefix, d.deviceId).commands, JSON.stringify(cmd), { qos: 1 });
      this.o.log.info({ rollout: r.id, deviceId: d.deviceId, model: r.model, attempt: a.attempt }, 'rollback command sent');
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
    throw new Error(`rollout action ${a.kind} goes through sendUpdates`);
  }

  /**
   * The rollout's spec into the desired documents of a slice of a wave: each device's next
   * document from the fleet store's copy and counter, all recorded in one store transaction
   * (one fsync, not one per device), then published in parallel. A device whose publish failed
   * stays as it was (pending): the next tick sends it again, with a newer desired version.
   */
  private async sendUpdates(
    r: RolloutRecord, updates: ReadonlyArray<Extract<RolloutAction, { kind: 'update' }>>, changed: Map<string, RolloutDevice>,
    byId: ReadonlyMap<string, RolloutDevice>, views: ReadonlyMap<string, DeviceView>,
  ): Promise<void> {
    const prepared = await Promise.all(updates.map(async (a) => {
      const stored = await this.o.store.desired(a.deviceId);
      const floor = Math.max(stored?.version ?? 0, views.get(a.deviceId)?.reported?.desiredVersion ?? 0);
      const doc = nextDesired(stored, (next) => {
        next.models[r.model] = r.spec;
      }, floor);
      return { a, previousSpec: stored?.models[r.model] ?? null, doc };
    }));
    const recorded = await this.o.store.recordDesiredMany(prepared.map((p) => ({ deviceId: p.a.deviceId, doc: p.doc })), this.o.clock.wallNow());
    await eachLimited(prepared.map((p, i) => ({ ...p, doc: recorded[i] as DesiredState })), ACTION_CONCURRENCY, async ({ a, previousSpec, doc }) => {
      const d = changed.get(a.deviceId) ?? byId.get(a.deviceId);
      if (!d) return;
      try {
        await publishDesired(this.o.client, this.o.prefix, a.deviceId, doc);
        changed.set(a.deviceId, { ...d, status: 'updating', desiredVersion: doc.version, previousSpec, previousActive: a.previousActive });
      } catch (err) {
        this.o.log.warn({ err, rollout: r.id, deviceId: a.deviceId, action: a.kind }, 'rollout action failed');
      }
    });
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
