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

interface SimEvent {
  id: string;
  seq: number;
  ts: number;
  type: string;
  payload: unknown;
}

/** A stable number in [0, 1) for a key: the same device and version always decide the same way. */
export function unitHash(key: string): number {
  return createHash('sha256').update(key).digest().readUInt32BE(0) / 2 ** 32;
}

export class SimDevice {
  private client: MqttClient | null = null;
  private readonly t: DeviceTopics;
  private readonly bootId = randomUUID();
  private desiredVersion = 0;
  private ignored: { version: number; reason: string } | undefined;
  private readonly models = new Map<string, SimModel>();
  private readonly fetches = new Map<string, { version: number; sha256: string; chunks: SimChunkFetch | null; abort: AbortController }>();
  private seq = 0;
  /** seq -> the event and when it was last sent (ms), in seq order: kept until the fleet acks it. */
  private readonly awaiting = new Map<number, { at: number; event: SimEvent }>();
  private eventTimer: NodeJS.Timeout | null = null;
  private reportTimer: NodeJS.Timeout | null = null;
  private reportScheduled = false;
  private eventCredit = 0;
  private stopped = false;

  constructor(private readonly o: SimDeviceOptions) {
    this.t = topics(o.prefix, o.deviceId);
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
    const client = connect(o.url, {
      clientId: o.deviceId,
      protocolVersion: 5,
      clean: false,
      properties: { sessionExpiryInterval: 3600 },
      keepalive: 60,
      reconnectPeriod: 1000 + Math.floor(unitHash(`${o.deviceId}/reconnect`) * 4000),
      connectTimeout: 30_000,
      will: { topic: this.t.status, payload: Buffer.from(this.statusPayload(false)), qos: 1, retain: true },
      ...o.connect,
    });
    this.client = client;
    client.on('message', (topic, payload) => this.onMessage(topic, payload));
    client.on('error', () => {
      if (!this.stopped) this.o.stats.connectErrors++;
    });
    client.on('close', () => {
      if (!this.stopped) this.o.stats.disconnects++;
    });
    client.on('connect', () => {
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
    if (this.eventTimer) clearInterval(this.eventTimer);
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
    if (this.o.eventsPerSecond > 0 && !this.eventTimer) {
      // Ticks of 1 s, phase spread over the fleet so 10,000 devices do not send in one burst.
      const start = setTimeout(() => {
        this.eventTimer = setInterval(() => this.eventTick(), 1000);
        this.eventTimer.unref();
      }, Math.floor(unitHash(`${this.o.deviceId}/phase`) * 1000));
      start.unref();
    }
    if (this.o.reportMs > 0 && !this.reportTimer) {
      this.reportTimer = setInterval(() => this.scheduleReport(), this.o.reportMs);
      this.reportTimer.unref();
    }
  }

  private statusPayload(online: boolean): string {
    return JSON.stringify({ online, ts: Date.now(), runtimeVersion: 'perch-simulated', bootId: this.bootId, labels: this.o.labels, outbox: { count: this.awaiting.size } });
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
      if (!parsed.ok) return;
      for (const [from, to] of parsed.value.ranges) {
        // Ranges may be wide (a fleet acking what it holds): walk the smaller side.
        if (to - from + 1 < this.awaiting.size) for (let s = from; s <= to; s++) this.awaiting.delete(s);
        else for (const s of this.awaiting.keys()) if (s >= from && s <= to) this.awaiting.delete(s);
      }
      this.o.stats.acksReceived++;
    }
  }

  private applyDesired(doc: DesiredState): void {
    if (doc.version <= this.desiredVersion) {
      if (doc.version < this.desiredVersion) {
        this.ignored = { version: doc.version, reason: `version ${doc.version} is not above the applied ${this.desiredVersion}` };
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

  /** Coalesces the changes of one tick into one state/reported message, like the agent. */
  private scheduleReport(): void {
    if (this.reportScheduled) return;
    this.reportScheduled = true;
    setImmediate(() => {
      this.reportScheduled = false;
      if (!this.client?.connected) return;
      this.o.stats.reportsSent++;
      this.client.publish(this.t.reported, JSON.stringify(this.reported()), { qos: 1, retain: true });
    });
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
      outbox: { count: this.awaiting.size },
      labels: this.o.labels,
      health: { windowMs: HEALTH_WINDOW_MS, models: health },
    };
  }

  private recordEvent(type: string, payload: Record<string, unknown>): void {
    this.sendEvents([{ type, payload }]);
  }

  private eventTick(): void {
    this.eventCredit += this.o.eventsPerSecond;
    const n = Math.floor(this.eventCredit);
    this.eventCredit -= n;
    for (let left = n; left > 0; left -= this.o.eventsPerBatch) {
      this.sendEvents(Array.from({ length: Math.min(left, this.o.eventsPerBatch) }, () => ({ type: 'sim.tick', payload: null })));
    }
    this.resendExpired();
  }

  private sendEvents(items: Array<{ type: string; payload: unknown }>): void {
    const room = this.o.maxAwaitingEvents - this.awaiting.size;
    if (room < items.length) {
      this.o.stats.eventsNotGenerated += items.length - Math.max(0, room);
      items = items.slice(0, Math.max(0, room));
    }
    if (items.length === 0) return;
    const now = Date.now();
    const events = items.map((e): SimEvent => ({ id: randomUUID(), seq: ++this.seq, ts: now, type: e.type, payload: e.payload }));
    for (const event of events) this.awaiting.set(event.seq, { at: now, event });
    this.publishEvents(events);
  }

  private publishEvents(events: SimEvent[]): void {
    if (!this.client?.connected) return; // kept in `awaiting`: re-sent after the ack timeout
    this.o.stats.eventsSent += events.length;
    this.client.publish(this.t.events, JSON.stringify({ deviceId: this.o.deviceId, events }), { qos: 1 });
  }

  /** Events with no ack after ackTimeoutMs go again, the same events, oldest first, a batch per tick. */
  private resendExpired(): void {
    const now = Date.now();
    const late: SimEvent[] = [];
    for (const a of this.awaiting.values()) {
      if (now - a.at < this.o.ackTimeoutMs) continue;
      a.at = now;
      late.push(a.event);
      if (late.length >= this.o.eventsPerBatch) break;
    }
    if (late.length === 0) return;
    this.o.stats.eventsResent += late.length;
    this.publishEvents(late);
  }
}
