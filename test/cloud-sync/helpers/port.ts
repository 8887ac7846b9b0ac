// A RuntimePort built from REAL parts (a real SQLite store, a real Bus, a real or fake Clock, the
// runtime's own event log, outbox queue and agent state namespace (runtime/port/create-port.ts),
// the real live-config validation) plus small model and inference stand-ins that record calls,
// so the agent can be tested against a real broker without a whole runtime.
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import type { InferenceOutcome, LiveConfig, LiveConfigResult, RuntimePort, ServedModel } from '../../../runtime/port/runtime-port.js';
import { Bus } from '../../../runtime/base/bus.js';
import { systemClock, type Clock } from '../../../runtime/base/clock.js';
import { parseConfig } from '../../../runtime/config/load.js';
import { EventLog } from '../../../runtime/events/event-log.js';
import { agentState, outboxQueue } from '../../../runtime/port/create-port.js';
import type { PerchConfig, PerchConfigInput } from '../../../runtime/config/schema.js';
import { PerchError, type ErrorCode } from '../../../runtime/base/errors.js';
import { liveOf, validateLive } from '../../../runtime/config/live-config.js';
import { silentLogger, type Logger } from '../../../runtime/base/log.js';
import { openStore, type PerchStore } from '../../../runtime/store/store.js';

export class RecordingModels {
  /** name -> versions installed, oldest first (last = served). */
  readonly versions = new Map<string, ServedModel[]>();
  readonly installs: { name: string; version: number; sha256: string; bytes: number; modelJson: unknown }[] = [];
  readonly rollbacks: string[] = [];
  readonly removed: string[] = [];
  /** Makes the next install fail with this code (load / warm-up failure). */
  failNextInstall: ErrorCode | null = null;

  seed(name: string, version: number, sha256 = 'a'.repeat(64)): void {
    this.versions.set(name, [{ name, version, sha256, previousVersion: null }]);
  }

  served(): ServedModel[] {
    return [...this.versions.values()].flatMap((v) => (v.length ? [v[v.length - 1] as ServedModel] : []));
  }

  async install(name: string, version: number, file: string, modelJson?: unknown): Promise<ServedModel> {
    const bytes = readFileSync(file);
    const sha256 = createHash('sha256').update(bytes).digest('hex');
    if (this.failNextInstall) {
      const code = this.failNextInstall;
      this.failNextInstall = null;
      throw new PerchError(code, `version ${version} of '${name}' did not load`);
    }
    this.installs.push({ name, version, sha256, bytes: bytes.length, modelJson });
    const list = this.versions.get(name) ?? [];
    const prev = list.at(-1)?.version ?? null;
    const m = { name, version, sha256, previousVersion: prev };
    this.versions.set(name, [...list.slice(-1), m]);
    return m;
  }

  async rollback(name: string): Promise<ServedModel> {
    const list = this.versions.get(name) ?? [];
    if (list.length < 2) throw new PerchError('PERCH_ERR_NO_PREVIOUS_VERSION', `model '${name}' keeps no previous version`);
    list.pop();
    this.rollbacks.push(name);
    return list.at(-1) as ServedModel;
  }

  async remove(name: string): Promise<void> {
    this.versions.delete(name);
    this.removed.push(name);
  }
}

export interface TestPort {
  port: RuntimePort;
  store: PerchStore;
  bus: Bus;
  models: RecordingModels;
  config: PerchConfig;
  dataDir: string;
  flushes: number;
  /** Feeds the circuit breaker as inference would. */
  infer(o: InferenceOutcome): void;
  appliedConfigs: unknown[];
  /** Every event told on the bus (the uploader deletes them from the outbox once delivered). */
  events: { type: string; payload: unknown }[];
  /** Appends an event as the runtime's EventLog does (outbox, then bus). */
  emit(type: string, payload: unknown): Promise<number>;
  /** Closes the store; keeps the data dir unless `remove`. */
  close(remove?: boolean): Promise<void>;
}

export interface TestPortOptions {
  mqttUrl: string;
  deviceId?: string;
  cloud?: NonNullable<PerchConfigInput['cloud']>;
  clock?: Clock;
  /** Reuse a data dir (restart tests); a fresh one otherwise. */
  dataDir?: string;
  /** The agent's logger (silent unless a test reads what the agent says it did). */
  log?: Logger;
  models?: RecordingModels;
}

export function makePort(opts: TestPortOptions): TestPort {
  const dataDir = opts.dataDir ?? mkdtempSync(join(tmpdir(), 'perch-agent-'));
  const config = parseConfig({
    device: { id: opts.deviceId ?? `dev-${randomUUID().slice(0, 8)}` },
    dataDir,
    log: { level: 'silent' },
    cloud: { mqttUrl: opts.mqttUrl, reconnect: { minMs: 50, maxMs: 500 }, ...opts.cloud },
  });
  const clock = opts.clock ?? systemClock;
  const store = openStore({ dataDir, clock });
  const bus = new Bus();
  const models = opts.models ?? new RecordingModels();
  let live: LiveConfig = liveOf(config);
  const listeners = new Set<(o: InferenceOutcome) => void>();
  const stagingDir = join(dataDir, 'staging');
  const log = opts.log ?? silentLogger();
  const eventLog = new EventLog(store.outbox, bus, log);
  mkdirSync(stagingDir, { recursive: true });
  const t: TestPort = {
    store,
    bus,
    models,
    config,
    dataDir,
    flushes: 0,
    appliedConfigs: [],
    events: [],
    infer: (o) => {
      for (const fn of listeners) fn(o);
    },
    emit: async (type, payload) => (await eventLog.emit(type, payload)).seq,
    close: async (remove = false) => {
      await store.close();
      if (remove) rmSync(dataDir, { recursive: true, force: true });
    },
    port: {
      device: { id: config.device.id, runtimeVersion: '0.0.0-test', bootId: randomUUID(), labels: config.device.labels },
      cloud: config.cloud,
      clock,
      log,
      events: eventLog,
      outbox: outboxQueue(store.outbox, bus),
      state: agentState(store.state, log),
      connectivity: { publish: (state) => bus.emit('connectivity', { state }) },
      cloudStatus: { ignored: (note) => bus.emit('cloudIgnored', { note }) },
      models: {
        stagingDir,
        repositoryDir: config.models.repository,
        served: () => models.served(),
        onChange: (listener) => bus.on('model', () => listener()),
        install: (n, v, f, j) => models.install(n, v, f, j),
        rollback: (n) => models.rollback(n),
        remove: (n) => models.remove(n),
      },
      liveConfig: {
        apply: (partial): LiveConfigResult => {
          const current = { ...config, log: live.log, models: { ...config.models, overrides: live.models.overrides }, cloud: { ...config.cloud, upload: live.cloud.upload } };
          const r = validateLive(current, partial);
          if (r.ok) {
            live = r.effective;
            t.appliedConfigs.push(partial);
          }
          return r;
        },
        current: () => live,
      },
      cache: {
        flush: () => {
          t.flushes++;
          return 7;
        },
      },
      inference: {
        onOutcome: (fn) => {
          listeners.add(fn);
          return () => listeners.delete(fn);
        },
      },
    },
  };
  bus.on('event', (e) => t.events.push({ type: e.type, payload: e.payload }));
  return t;
}
