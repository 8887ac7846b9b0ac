// One simulated device (`perch fleet simulate`): the device side of docs/protocol.md section 5 on
// its own MQTT connection, without a runtime. It publishes a retained status with its labels (and
// the offline Last Will), subscribes to its desired state, commands, chunks and event acks;
// applies desired documents as the agent does (version only rises, ignored otherwise; downgrade,
// signature (the agent's own checkSignature) and size checked before any byte is fetched; bytes
// by MQTT chunks or HTTP Range, size and digest verified); "installs" a verified version, which
// fails to load with the configured probability; reports state/reported with in-service health
// of the active versions (an unhealthy share reports a high error rate); obeys rollback; sends
// events that it keeps until the fleet acks them. Memory per device: a connection, a few small
// maps, and one download window while fetching.
import { createHash, randomUUID } from 'node:crypto';
import { connect, type IClientOptions, type MqttClient } from 'mqtt';
import { PerchError, toPerchError, type ErrorCode } from '../../../runtime/base/errors.js';
import { checkSignature, type SignaturePolicy } from '../../agent/model-update/signature.js';
import { parsePayload } from '../../protocol/parse.js';
import { commandSchema, desiredSchema, eventsAckSchema, type DesiredState, type ModelSpec } from '../../protocol/schemas.js';
import { parseTopic, topics, type DeviceTopics } from '../../protocol/topics.js';
import { SimEvents } from './sim-events.js';
import { SimChunkFetch, simHttpFetch, type FetchLimits } from './sim-fetch.js';
import type { SimStats } from './sim-stats.js';

export interface SimDeviceOptions {
  url: string;
  prefix: string;
  deviceId: string;
  labels: Record<string, string>;
  /** Share of installs that fail to load (PERCH_ERR_MODEL_LOAD_FAILED), decided per device and version. */
  failureRate: number;
  /** Share of active versions that report an in-service error rate of 0.5 instead of 0. */
  unhealthyRate: number;
  signature: SignaturePolicy;
  maxModelBytes: number;
  fetch: FetchLimits;
  /** Events per second this device sends (0: none), as batches of eventsPerBatch. */
  eventsPerSecond: number;
  eventsPerBatch: number;
  /** Events held unacked at most; more are not generated until acks free room (counted). */
  maxAwaitingEvents: number;
  ackTimeoutMs: number;
  /** state/reported again this often, with fresh health (0: only on change). */
  reportMs: number;
  /** TLS and credentials, as the fleet options give them. */
  connect?: Partial<IClientOptions>;
  stats: SimStats;
}

interface SimModel {
  version: number;
  sha256: string;
  status: 'active' | 'downloading' | 'staged' | 'failed';
  error?: { code: string; message: string };
  progress?: { staged: number; total: number };
  /** What serves of this model (null: nothing). */
  active: { version: number; sha256: string } | null;
  /** What served before the active one (for rollback). */
  previous: { version: number; sha256: string } | null;
}

const HEALTH_WINDOW_MS = 60_000;
/**
 * Long: a simulator process with thousands of devices can be starved of CPU for many seconds,
 * and a keepalive its timers miss makes the broker drop every connection at once (MQTT 5
 * section 3.1.2.10: 1.5 x keepalive without a packet). Idle devices cost one PINGREQ per 5 min.
 */
const SIM_KEEPALIVE_S = 300;
const RECONNECT_BASE_MS = 1000;
const RECONNECT_SPREAD_MS = 4000;
const RECONNECT_MAX_MS = 60_000;
/** state/reported at most this often per device (the latest state wins), as the agent's progress reports. */
const REPORT_MIN_INTERVAL_MS = 500;


/** A stable number in [0, 1) for a key: the same device and version always decide the same way. */
export function unitHash(key: string): number {
  return createHash('sha256').update(key).digest().readUInt32BE(0) / 2 ** 32;
}

export class SimDevice {
  private client: MqttClient | null = null;
  private readonly t: DeviceTopics;
  private readonly bootId = randomUUID();
  private desiredVersion = 0;
  private ignored: { version: number; code: string; reason: string } | undefined;
  private readonly models = new Map<string, SimModel>();
  private readonly fetches = new Map<string, { version: number; sha256: string; chunks: SimChunkFetch | null; abort: AbortController }>();
  private readonly events: SimEvents;
  private reportTimer: NodeJS.Timeout | null = null;
  private reportScheduled = false;
  private lastReportAt = 0;
  private stopped = false;

  constructor(private readonly o: SimDeviceOptions) {
    this.t = topics(o.prefix, o.deviceId);
    this.events = new SimEvents({
      deviceId: o.deviceId, topic: this.t.events, eventsPerSecond: o.eventsPerSecond, eventsPerBatch: o.eventsPerBatch,
      maxAwaitingEvents: o.maxAwaitingEvents, ackTimeoutMs: o.ackTimeoutMs, phase: unitHash(`${o.deviceId}/phase`), stats: o.stats,
    }, () => this.client);
  }

  get online(): boolean {
    return this.client?.connected ?? false;
  }

  /** The version of `name` this device serves now (for the runner's summaries). */
  activeVersion(name: string): number | null {
    return this.models.get(name)?.active?.version ?? null;
  }

  start(): Promise<void> {
    const o = this.o;
    // Reconnects start 1-5 s after a loss (spread per device) and double on every failed try up
    // to a minute, jittered: thousands of devices of a CPU-starved process that lost their
    // connections together must not come back together, again and again (docs/benchmarks.md
    // "Fleet scale": a reconnect storm stopped the first 10,000-device rollouts).
    const base = RECONNECT_BASE_MS + Math.floor(unitHash(`${o.deviceId}/reconnect`) * RECONNECT_SPREAD_MS);
    let failures = 0;
    const client = connect(o.url, {
      clientId: o.deviceId,
      protocolVersion: 5,
      clean: false,
      properties: { sessionExpiryInterval: 3600 },
      keepalive: SIM_KEEPALIVE_S,
      reconnectPeriod: base,
      connectTimeout: 30_000,
      will: { topic: this.t.status, payload: Buffer.from(this.statusPayload(false)), qos: 1, retain: true },
      ...o.connect,
    });
    this.client = client;
    client.on('message', (topic, payload) => this.onMessage(topic, payload));
    client.on('error', () => {
      if (!this.stopped) this.o.stats.connectErrors++;
    });
    // MQTT.js has scheduled this reconnect already (its own 'close' listener runs first): the period set here is the next one's.
    client.on('close', () => {
      if (this.stopped) return;
      this.o.stats.disconnects++;
      failures++;
      const backoff = Math.min(RECONNECT_MAX_MS, base * 2 ** Math.min(failures, 6));
      client.options.reconnectPeriod = Math.floor(backoff * (0.5 + unitHash(`${o.deviceId}/backoff/${failures}`)));
    });
    client.on('connect', () => {
      failures = 0;
      client.options.reconnectPeriod = base;
      this.o.stats.connects++;
      void this.onConnect();
    });
    return new Promise<void>((resolve) => {
      client.once('connect', () => resolve());
      // A device that never gets through still counts as started: the runner reports it offline.
      client.once('end', () => resolve());
      setTimeout(resolve, 30_000).unref();
    });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.events.stop();
    if (this.reportTimer) clearInterval(this.reportTimer);
    for (const f of this.fetches.values()) {
      f.abort.abort();
      f.chunks?.cancel();
    }
    const c = this.client;
    if (!c) return;
    // A clean shutdown says offline itself (the Last Will is only for a lost connection).
    if (c.connected) await c.publishAsync(this.t.status, this.statusPayload(false), { qos: 1, retain: true }).catch(() => undefined);
    await c.endAsync().catch(() => undefined);
  }

  private async onConnect(): Promise<void> {
    const c = this.client;
    if (!c) return;
    try {
      await c.subscribeAsync({ [this.t.desired]: { qos: 1 }, [this.t.commands]: { qos: 1 }, [this.t.allChunks]: { qos: 1 }, [this.t.eventsAck]: { qos: 1 } });
      await c.publishAsync(this.t.status, this.statusPayload(true), { qos: 1, retain: true });
      this.scheduleReport();
    } catch {
      this.o.stats.connectErrors++;
      return;
    }
    this.events.start();
    if (this.o.reportMs > 0 && !this.reportTimer) {
      this.reportTimer = setInterval(() => this.scheduleReport(), this.o.reportMs);
      this.reportTimer.unref();
    }
  }

  private statusPayload(online: boolean): string {
    return JSON.stringify({ online, ts: Date.now(), runtimeVersion: 'perch-simulated', bootId: this.bootId, labels: this.o.labels, outbox: { count: this.events.unacked } });
  }

  private onMessage(topic: string, payload: Buffer): void {
    const p = parseTopic(this.o.prefix, topic);
    if (!p || p.deviceId !== this.o.deviceId) return;
    if (p.kind === 'chunk') {
      const f = p.name === undefined ? undefined : this.fetches.get(p.name);
      if (f?.chunks && f.version === p.version && p.index !== undefined) {
        this.o.stats.chunksReceived++;
        this.o.stats.chunkBytesReceived += payload.length;
        f.chunks.receive(p.index, payload);
      } else {
        this.o.stats.chunksIgnored++;
      }
    } else if (p.kind === 'desired') {
      if (payload.length === 0) return;
      const parsed = parsePayload(desiredSchema, payload);
      if (!parsed.ok) return this.recordEvent('desired.rejected', { code: parsed.error.code, message: parsed.error.message });
      this.applyDesired(parsed.value);
    } else if (p.kind === 'commands') {
      const parsed = parsePayload(commandSchema, payload);
      if (parsed.ok) this.command(parsed.value.id, parsed.value.command, parsed.value.args ?? {});
    } else if (p.kind === 'eventsAck') {
      const parsed = parsePayload(eventsAckSchema, payload);
      if (parsed.ok) this.events.acked(parsed.value);
    }
  }

  private applyDesired(doc: DesiredState): void {
    if (doc.version <= this.desiredVersion) {
      if (doc.version < this.desiredVersion) {
        this.ignored = { version: doc.version, code: 'PERCH_ERR_DESIRED_STALE', reason: `version ${doc.version} is not above the applied ${this.desiredVersion}` };
        this.scheduleReport();
      }
      return;
    }
    this.desiredVersion = doc.version;
    this.ignored = undefined;
    for (const [name, spec] of Object.entries(doc.models)) {
      if (spec === null) {
        this.cancelFetch(name);
        if (this.models.delete(name)) this.recordEvent('model.removed', { model: name });
      } else {
        this.ensure(name, spec);
      }
    }
    this.scheduleReport();
  }

  private ensure(name: string, spec: ModelSpec): void {
    const m = this.models.get(name);
    if (m?.active?.version === spec.version && m.active.sha256 === spec.sha256) {
      if (m.status !== 'active') Object.assign(m, { version: spec.version, sha256: spec.sha256, status: 'active', error: undefined });
      return;
    }
    const running = this.fetches.get(name);
    if (running && running.version === spec.version && running.sha256 === spec.sha256) return;
    if (m && m.version === spec.version && m.sha256 === spec.sha256 && m.status === 'failed') return; // refused before
    this.cancelFetch(name);
    void this.update(name, spec);
  }

  private async update(name: string, spec: ModelSpec): Promise<void> {
    const prev = this.models.get(name);
    const entry: SimModel = { version: spec.version, sha256: spec.sha256, status: 'downloading', active: prev?.active ?? null, previous: prev?.previous ?? null };
    this.models.set(name, entry);
    const abort = new AbortController();
    const f = { version: spec.version, sha256: spec.sha256, chunks: null as SimChunkFetch | null, abort };
    this.fetches.set(name, f);
    this.o.stats.updatesStarted++;
    let step = 'check-version';
    try {
      // The three checks before any byte (cloud-sync/agent/model-update/steps.ts).
      if (entry.active && spec.version < entry.active.version) {
        throw new PerchError('PERCH_ERR_MODEL_DOWNGRADE', `desired version ${spec.version} of '${name}' is lower than version ${entry.active.version} that serves`);
      }
      step = 'check-signature';
      checkSignature(name, spec, this.o.signature);
      step = 'check-space';
      if (spec.size > this.o.maxModelBytes) throw new PerchError('PERCH_ERR_MODEL_TOO_LARGE', `model '${name}' version ${spec.version} is ${spec.size} bytes, over ${this.o.maxModelBytes}`);
      step = 'fetch';
      this.scheduleReport();
      if (spec.url) {
        await simHttpFetch({ ...spec, url: spec.url }, abort.signal);
      } else {
        f.chunks = new SimChunkFetch(name, spec, this.o.fetch, (req) => {
          this.o.stats.chunksRequested += req.count;
          this.client?.publish(this.t.modelsRequest, JSON.stringify(req), { qos: 1 });
        });
        f.chunks.start();
        await f.chunks.done;
      }
      step = 'load-warmup-swap';
      if (unitHash(`${this.o.deviceId}/${name}/${spec.version}/load`) < this.o.failureRate) {
        throw new PerchError('PERCH_ERR_MODEL_LOAD_FAILED', `simulated load failure of '${name}' version ${spec.version}`);
      }
      if (this.fetches.get(name) !== f) return;
      entry.previous = entry.active;
      entry.active = { version: spec.version, sha256: spec.sha256 };
      entry.status = 'active';
      this.o.stats.updatesApplied++;
      this.recordEvent('model.update.applied', { model: name, version: spec.version, sha256: spec.sha256, previousVersion: entry.previous?.version ?? null });
    } catch (err) {
      if (abort.signal.aborted || this.fetches.get(name) !== f) return;
      const e = toPerchError(err);
      entry.status = 'failed';
      entry.error = { code: e.code, message: e.message };
      this.o.stats.updatesFailed++;
      this.recordEvent('model.update.failed', { model: name, version: spec.version, sha256: spec.sha256, step, code: e.code, message: e.message });
    } finally {
      if (this.fetches.get(name) === f) this.fetches.delete(name);
      this.scheduleReport();
    }
  }

  private cancelFetch(name: string): void {
    const f = this.fetches.get(name);
    if (!f) return;
    this.fetches.delete(name);
    f.abort.abort();
    f.chunks?.cancel();
  }

  private command(id: string, command: string, args: Record<string, unknown>): void {
    if (command === 'rollback') {
      const name = typeof args.model === 'string' ? args.model : '';
      const m = this.models.get(name);
      // As the device (cloud-sync/agent/commands.ts): a rollback names the version it is meant for.
      if (args.version !== undefined && m?.active?.version !== args.version) {
        return this.recordEvent('command.failed', { id, command, code: 'PERCH_ERR_ROLLBACK_STALE' satisfies ErrorCode, message: `version ${String(args.version)} of '${name}' does not serve` });
      }
      if (!m?.previous || !m.active) return this.recordEvent('command.failed', { id, command, code: 'PERCH_ERR_NO_PREVIOUS_VERSION', message: `no previous version of '${name}' is kept` });
      const from = m.active;
      m.active = m.previous;
      m.previous = null;
      Object.assign(m, { version: from.version, sha256: from.sha256, status: 'failed', error: { code: 'PERCH_ERR_MODEL_ROLLED_BACK' satisfies ErrorCode, message: 'rollback command' } });
      this.o.stats.rollbacks++;
      this.recordEvent('model.rolled_back', { model: name, from: from.version, to: m.active.version, trigger: 'command' });
    }
    this.recordEvent('command.succeeded', { id, command });
    this.scheduleReport();
  }

  /**
   * Coalesces changes into one state/reported message: at the next tick, and then at most one
   * per REPORT_MIN_INTERVAL_MS with the state as it is when it goes (download progress, a
   * rollback and its re-desired entry: at 10,000 devices every reported state is a store commit
   * on serve's ordered connection).
   */
  private scheduleReport(): void {
    if (this.reportScheduled) return;
    this.reportScheduled = true;
    const wait = Math.max(0, this.lastReportAt + REPORT_MIN_INTERVAL_MS - Date.now());
    const send = (): void => {
      this.reportScheduled = false;
      if (!this.client?.connected) return;
      this.lastReportAt = Date.now();
      this.o.stats.reportsSent++;
      this.client.publish(this.t.reported, JSON.stringify(this.reported()), { qos: 1, retain: true });
    };
    if (wait === 0) setImmediate(send);
    else setTimeout(send, wait).unref();
  }

  private reported(): Record<string, unknown> {
    const models: Record<string, unknown> = {};
    const health: Record<string, Record<string, unknown>> = {};
    for (const [name, m] of this.models) {
      const f = this.fetches.get(name);
      const progress = f?.chunks ? { staged: f.chunks.staged, total: f.chunks.total } : undefined;
      models[name] = { version: m.version, sha256: m.sha256, status: m.status, ...(m.error ? { error: m.error } : {}), ...(progress ? { progress } : {}), ...(m.status !== 'active' ? { active: m.active } : {}) };
      if (m.active) {
        const unhealthy = unitHash(`${this.o.deviceId}/${name}/${m.active.version}/health`) < this.o.unhealthyRate;
        const requests = 600;
        const errors = unhealthy ? 300 : 0;
        health[name] = { [String(m.active.version)]: { requests, errors, errorRate: errors / requests, p99Ms: unhealthy ? 250 : 12 } };
      }
    }
    return {
      desiredVersion: this.desiredVersion, models, config: {}, ts: Date.now(),
      ...(this.ignored ? { ignored: this.ignored } : {}),
      outbox: { count: this.events.unacked },
      labels: this.o.labels,
      health: { windowMs: HEALTH_WINDOW_MS, models: health },
    };
  }

  private recordEvent(type: string, payload: Record<string, unknown>): void {
    this.events.record(type, payload);
  }
}
