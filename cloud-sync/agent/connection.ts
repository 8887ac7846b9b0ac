// The MQTT connection (docs/protocol.md section 5): one mqtt.js client at a time, client id = device id,
// persistent session, retained status with a Last Will. mqtt.js's own fixed-period reconnect is
// off (reconnectPeriod 0): a fresh client per attempt, scheduled on the injected clock with full
// jitter (backoff.ts), so a fleet does not reconnect in lock-step and tests can drive time.
// Connectivity changes go to the bus (WebSocket `connectivity`, perch_cloud_connected).
import { readFileSync } from 'node:fs';
import mqtt, { type IClientOptions, type IClientPublishOptions, type MqttClient } from 'mqtt';
import type { TimerHandle } from '../../runtime/base/clock.js';
import { PerchError } from '../../runtime/base/errors.js';
import { topics, type DeviceTopics, type StatusMessage } from '../protocol/index.js';
import { Backoff } from './backoff.js';
import type { RuntimePort } from '../../runtime/port/runtime-port.js';
import type { AgentStats } from './stats.js';

/** What of the runtime the connection uses: who the device is, the cloud config, connectivity. */
export type ConnectionRuntime = Pick<RuntimePort, 'device' | 'cloud' | 'clock' | 'log' | 'connectivity'>;

export interface ConnectionOptions {
  /** Jitter source for the reconnect backoff (tests pin it). */
  random?: () => number;
  /** CONNACK wait per attempt (mqtt.js measures it on its own timer). */
  connectTimeoutMs?: number;
  /** How long a clean shutdown waits for the broker to take the offline status. */
  stopTimeoutMs?: number;
}

export type MessageHandler = (topic: string, payload: Buffer) => void;

interface Pending {
  reject(err: PerchError): void;
}

/**
 * A connection must stay up this long before the reconnect backoff starts again from its
 * minimum: one closed sooner (another client taking over the client id, a broker that accepts
 * and then drops us) counts as a failed attempt, so two clients with one id do not kick each
 * other off in a tight loop (docs/cloud-sync.md, "Connection").
 */
export const STABLE_CONNECTION_MS = 30_000;

/** [MQTT-3.14.2.1] DISCONNECT reason 0x8E: another client connected with this client id. */
const SESSION_TAKEN_OVER = 0x8e;

/** mqtt.js copies publish options, so one object each serves every call. */
const QOS1 = { qos: 1, retain: false } as const;
const QOS1_RETAINED = { qos: 1, retain: true } as const;

export class Connection {
  readonly topics: DeviceTopics;
  private client: MqttClient | null = null;
  private connected = false;
  private stopped = true;
  private reconnectTimer: TimerHandle | null = null;
  private readonly backoff: Backoff;
  private readonly subscriptions = new Set<string>();
  private readonly pending = new Set<Pending>();
  private readonly onlineFns = new Set<() => void>();
  private readonly offlineFns = new Set<() => void>();
  private messageFn: MessageHandler = () => undefined;
  /** clock.now() at the last CONNACK of the current client (null while not connected). */
  private connectedAt: number | null = null;
  /** The broker said another client took over this client id (MQTT 5 DISCONNECT 0x8E). */
  private displaced = false;
  /** Delays chosen so far, newest last (for logs and tests of the backoff). */
  readonly delays: number[] = [];

  constructor(
    private readonly runtime: ConnectionRuntime,
    private readonly stats: AgentStats,
    private readonly opts: ConnectionOptions = {},
  ) {
    this.topics = topics(runtime.cloud.topicPrefix, runtime.device.id);
    this.backoff = new Backoff({ minMs: runtime.cloud.reconnect.minMs, maxMs: runtime.cloud.reconnect.maxMs, random: opts.random });
  }

  get online(): boolean {
    return this.connected;
  }

  onOnline(fn: () => void): () => void {
    this.onlineFns.add(fn);
    return () => this.onlineFns.delete(fn);
  }

  onOffline(fn: () => void): () => void {
    this.offlineFns.add(fn);
    return () => this.offlineFns.delete(fn);
  }

  onMessage(fn: MessageHandler): void {
    this.messageFn = fn;
  }

  start(): void {
    this.stopped = false;
    this.attempt();
  }

  /** QoS 1; resolves at the broker's PUBACK, rejects (BROKER_UNREACHABLE) if the link drops first. */
  publish(topic: string, payload: string | Buffer, opts: { retain?: boolean } = {}): Promise<void> {
    return new Promise<void>((resolve, reject) => this.publishThen(topic, payload, opts.retain ?? false, (err) => (err ? reject(err) : resolve())));
  }

  /**
   * publish() with a callback instead of a promise (the uploader sends thousands a second): `done`
   * runs once, with null at the PUBACK or BROKER_UNREACHABLE if the link drops first; never
   * synchronously, so a caller in the middle of a loop is not re-entered.
   */
  publishThen(topic: string, payload: string | Buffer, retain: boolean, done: (err: PerchError | null) => void, properties?: IClientPublishOptions['properties']): void {
    const client = this.client;
    if (!client || !this.connected) {
      queueMicrotask(() => done(new PerchError('PERCH_ERR_BROKER_UNREACHABLE', 'not connected to the broker')));
      return;
    }
    let settled = false;
    const entry: Pending = {
      reject: (err) => {
        if (settled) return;
        settled = true;
        done(err);
      },
    };
    this.pending.add(entry);
    const opts: IClientPublishOptions = retain ? QOS1_RETAINED : QOS1;
    client.publish(topic, payload, properties ? { ...opts, properties } : opts, (err) => {
      this.pending.delete(entry);
      if (settled) return;
      settled = true;
      done(err ? new PerchError('PERCH_ERR_BROKER_UNREACHABLE', err.message, { cause: err }) : null);
    });
  }

  /** Kept across reconnects: every connect subscribes the whole set again. */
  async subscribe(filter: string): Promise<void> {
    this.subscriptions.add(filter);
    if (this.client && this.connected) await this.sendSubscribe(this.client, [filter]);
  }

  async unsubscribe(filter: string): Promise<void> {
    if (!this.subscriptions.delete(filter)) return;
    const client = this.client;
    if (client && this.connected) {
      await client.unsubscribeAsync(filter).catch((err: unknown) => this.runtime.log.debug({ err, filter }, 'unsubscribe failed'));
    }
  }

  /** Clean shutdown: the retained offline status, then DISCONNECT (so the broker drops the Will). */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.reconnectTimer) this.runtime.clock.clearTimeout(this.reconnectTimer);
    this.reconnectTimer = null;
    const client = this.client;
    if (!client) return;
    if (this.connected) {
      const offline = this.publish(this.topics.status, this.statusPayload(false), { retain: true });
      const ok = await this.within(offline, this.opts.stopTimeoutMs ?? 3000);
      if (!ok) this.runtime.log.warn('broker did not take the offline status in time; the Last Will tells instead');
      await this.within(client.endAsync(false), this.opts.stopTimeoutMs ?? 3000);
    }
    this.dropClient(client);
    this.setOffline();
  }

  private attempt(): void {
    this.reconnectTimer = null;
    if (this.stopped) return;
    let client: MqttClient;
    try {
      client = mqtt.connect(this.runtime.cloud.mqttUrl ?? '', this.clientOptions());
    } catch (err) {
      // A URL mqtt.js cannot use, or TLS files that cannot be read: retry later like any outage.
      this.runtime.log.error({ err }, 'cannot create the MQTT client');
      this.scheduleReconnect();
      return;
    }
    this.client = client;
    // Nagle off: what the device sends is small and waited for (SUBSCRIBE, chunk requests,
    // PUBACKs of chunks); held back until the broker's delayed ACK, each cost ~40 ms.
    (client.stream as { setNoDelay?: (on: boolean) => void } | undefined)?.setNoDelay?.(true);
    client.on('connect', (connack) => {
      if (client !== this.client) return;
      // The backoff is reset only once the connection has proved stable (handleClose).
      this.connectedAt = this.runtime.clock.now();
      this.displaced = false;
      this.stats.connects++;
      this.runtime.log.info({ url: this.runtime.cloud.mqttUrl, sessionPresent: connack.sessionPresent }, 'connected to the broker');
      // Online means the device hears the cloud: only once desired state and commands are
      // subscribed (SUBACK). On a first connect the broker holds no subscription yet, and a
      // non-retained command sent between CONNACK and SUBACK would be lost.
      const subscribed = this.subscriptions.size > 0 ? this.sendSubscribe(client, [...this.subscriptions]) : Promise.resolve();
      subscribed
        .catch((err: unknown) => this.runtime.log.warn({ err }, 'subscribe failed'))
        .finally(() => {
          if (client !== this.client || !client.connected) return;
          this.connected = true;
          this.publish(this.topics.status, this.statusPayload(true), { retain: true }).catch((err: unknown) =>
            this.runtime.log.warn({ err }, 'online status not published'),
          );
          this.runtime.connectivity.publish('online');
          for (const fn of this.onlineFns) fn();
        });
    });
    client.on('message', (topic, payload) => {
      if (client === this.client) this.messageFn(topic, payload);
    });
    // Without a listener an 'error' event would throw; the 'close' that follows does the work.
    client.on('error', (err) => this.runtime.log.warn({ code: 'PERCH_ERR_BROKER_UNREACHABLE', err: err.message }, 'MQTT connection error'));
    client.on('disconnect', (packet) => {
      if (client === this.client && packet.reasonCode === SESSION_TAKEN_OVER) this.displaced = true;
    });
    client.on('close', () => this.handleClose(client));
  }

  private handleClose(client: MqttClient): void {
    if (client !== this.client || this.stopped) return;
    this.dropClient(client);
    if (this.connected) {
      this.stats.disconnects++;
      this.runtime.log.warn('disconnected from the broker');
    }
    const lasted = this.connectedAt === null ? null : this.runtime.clock.now() - this.connectedAt;
    this.connectedAt = null;
    if (lasted !== null && lasted >= STABLE_CONNECTION_MS) this.backoff.reset();
    const displaced = this.displaced;
    this.displaced = false;
    this.setOffline();
    this.scheduleReconnect();
    const delayMs = this.delays.at(-1);
    if (displaced) {
      this.stats.displaced++;
      this.runtime.log.warn(
        { code: 'PERCH_ERR_CLIENT_ID_TAKEN', clientId: this.runtime.device.id, delayMs, attempt: this.backoff.attempts },
        'displaced: another client connected with this device\'s client id (session taken over); backing off instead of taking it back at once',
      );
    } else if (lasted !== null && lasted < STABLE_CONNECTION_MS) {
      this.runtime.log.warn(
        { code: 'PERCH_ERR_CLIENT_ID_TAKEN', clientId: this.runtime.device.id, lastedMs: Math.round(lasted), delayMs, attempt: this.backoff.attempts },
        'the broker closed the connection soon after accepting it (another client using this device\'s client id?); backing off',
      );
    }
  }

  private scheduleReconnect(): void {
    if (this.stopped || this.reconnectTimer) return;
    const delay = this.backoff.next();
    this.delays.push(delay);
    if (this.delays.length > 100) this.delays.shift();
    this.runtime.log.debug({ delayMs: delay, attempt: this.backoff.attempts }, 'reconnecting after a delay');
    this.reconnectTimer = this.runtime.clock.setTimeout(() => this.attempt(), delay);
  }

  private setOffline(): void {
    // Offline before the pending publishes fail: their callbacks (some run synchronously) must
    // see a lost link, not a publish refused while connected.
    const was = this.connected;
    this.connected = false;
    const pending = [...this.pending];
    this.pending.clear();
    for (const p of pending) p.reject(new PerchError('PERCH_ERR_BROKER_UNREACHABLE', 'connection to the broker closed'));
    if (!was) return;
    this.runtime.connectivity.publish('offline');
    for (const fn of this.offlineFns) fn();
  }

  private dropClient(client: MqttClient): void {
    // Our listeners stay (each checks it still serves the current client); removing them all
    // would also remove mqtt.js's own 'close' handler, which clears its timers.
    if (this.client === client) this.client = null;
    client.end(true);
  }

  private async sendSubscribe(client: MqttClient, filters: string[]): Promise<void> {
    const granted = await client.subscribeAsync(filters, { qos: 1 });
    for (const g of granted) {
      // [MQTT-3.9.3] 0x80 = failure: an ACL that forbids the topic.
      if (g.qos === 128) this.runtime.log.error({ topic: g.topic }, 'broker refused a subscription');
    }
  }

  private statusPayload(online: boolean): string {
    const status: StatusMessage = { online, ts: this.runtime.clock.wallNow(), runtimeVersion: this.runtime.device.runtimeVersion, bootId: this.runtime.device.bootId, labels: this.runtime.device.labels };
    return JSON.stringify(status);
  }

  private clientOptions(): IClientOptions {
    const { cloud } = this.runtime;
    const opts: IClientOptions = {
      clientId: this.runtime.device.id,
      // Persistent session: QoS 1 messages for the device (desired, commands, chunks) wait at
      // the broker while it is away.
      clean: false,
      keepalive: cloud.keepaliveSeconds,
      protocolVersion: cloud.protocolVersion,
      reconnectPeriod: 0,
      connectTimeout: this.opts.connectTimeoutMs ?? 10_000,
      resubscribe: false,
      will: { topic: this.topics.status, payload: Buffer.from(this.statusPayload(false)), qos: 1, retain: true },
    };
    // MQTT 5 ends a session at disconnect unless told otherwise; 3.1.1 keeps it (broker policy).
    if (cloud.protocolVersion === 5) opts.properties = { sessionExpiryInterval: 0xffffffff };
    if (cloud.username !== null) opts.username = cloud.username;
    if (cloud.password !== null) opts.password = cloud.password;
    if (cloud.caFile) opts.ca = readFileSync(cloud.caFile);
    if (cloud.certFile) opts.cert = readFileSync(cloud.certFile);
    if (cloud.keyFile) opts.key = readFileSync(cloud.keyFile);
    if (cloud.caFile || cloud.certFile) opts.rejectUnauthorized = true;
    return opts;
  }

  /** Waits for `p` at most `ms` on the injected clock; false when time ran out or it failed. */
  private within(p: Promise<unknown>, ms: number): Promise<boolean> {
    return new Promise((resolve) => {
      const t = this.runtime.clock.setTimeout(() => resolve(false), ms);
      p.then(
        () => {
          this.runtime.clock.clearTimeout(t);
          resolve(true);
        },
        () => {
          this.runtime.clock.clearTimeout(t);
          resolve(false);
        },
      );
    });
  }
}
