// Connecting to the broker with a deadline: a fleet command must fail fast with
// PERCH_ERR_BROKER_UNREACHABLE, never hang or retry forever (reconnectPeriod 0).
import { randomBytes } from 'node:crypto';
import { createSecureContext } from 'node:tls';
import { connect, type IClientOptions, type MqttClient } from 'mqtt';
import { PerchError } from '../../../runtime/base/errors.js';
import type { BrokerOptions } from '../cli/options.js';

export interface ConnectOptions {
  clientId?: string;
  /** false: keep the session (queued QoS 1 messages) across disconnects. */
  clean?: boolean;
  /** MQTT 5 session expiry, seconds, when clean is false. */
  sessionExpirySeconds?: number;
  /** After the first connection: reconnect on loss every this many ms (serve); 0 = never. */
  reconnectPeriodMs?: number;
  /** Installed before connecting, so no message can arrive unhandled (PUBACK after it calls done). */
  handleMessage?: MqttClient['handleMessage'];
}

export function clientOptions(broker: BrokerOptions, opts: ConnectOptions = {}): IClientOptions {
  const o: IClientOptions = {
    protocolVersion: 5,
    clientId: opts.clientId ?? `perch-fleet-${randomBytes(6).toString('hex')}`,
    clean: opts.clean ?? true,
    connectTimeout: broker.timeoutMs,
    reconnectPeriod: 0,
    keepalive: 30,
  };
  if (opts.clean === false) o.properties = { sessionExpiryInterval: opts.sessionExpirySeconds ?? 7 * 24 * 3600 };
  if (broker.ca) o.ca = broker.ca;
  if (broker.cert) o.cert = broker.cert;
  if (broker.key) o.key = broker.key;
  if (broker.username !== undefined) o.username = broker.username;
  if (broker.password !== undefined) o.password = broker.password;
  return o;
}

/** Resolves once CONNACK says yes; rejects with PERCH_ERR_BROKER_UNREACHABLE within timeoutMs. */
export function connectBroker(broker: BrokerOptions, opts: ConnectOptions = {}): Promise<MqttClient> {
  return new Promise((resolve, reject) => {
    // --ca/--cert/--key that are not PEM: MQTT.js threw from inside connect() (PERCH_ERR_INTERNAL)
    // and then crashed the process on its half-built client (a TypeError on its missing stream).
    if (broker.ca || broker.cert || broker.key) {
      try {
        createSecureContext({ ...(broker.ca ? { ca: broker.ca } : {}), ...(broker.cert ? { cert: broker.cert } : {}), ...(broker.key ? { key: broker.key } : {}) });
      } catch (err) {
        reject(new PerchError('PERCH_ERR_BROKER_UNREACHABLE', `cannot connect to ${broker.url}: --ca/--cert/--key: ${(err as Error).message}`, { cause: err }));
        return;
      }
    }
    let settled = false;
    const client = connect(broker.url, { ...clientOptions(broker, opts), manualConnect: true });
    if (opts.handleMessage) client.handleMessage = opts.handleMessage;
    // Nagle off, on every (re)connection: serve's PUBACKs of chunk requests and the tail of each
    // chunk it sends are small; held back until the broker's delayed ACK, a model download
    // stalled ~40 ms at a time.
    client.on('connect', () => (client.stream as { setNoDelay?: (on: boolean) => void } | undefined)?.setNoDelay?.(true));
    const fail = (why: string, cause?: unknown): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      client.end(true);
      reject(new PerchError('PERCH_ERR_BROKER_UNREACHABLE', `cannot connect to ${broker.url}: ${why}`, { cause }));
    };
    // Our own deadline on top of connectTimeout: DNS or a TLS handshake that stalls is covered too.
    const timer = setTimeout(() => fail(`no CONNACK within ${broker.timeoutMs} ms`), broker.timeoutMs);
    client.once('connect', () => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (opts.reconnectPeriodMs) client.options.reconnectPeriod = opts.reconnectPeriodMs;
      resolve(client);
    });
    client.on('error', (err) => fail(err.message, err));
    client.once('close', () => fail('connection closed'));
    client.connect();
  });
}

/**
 * Ends a client for good. The clients above are made with `manualConnect`, and MQTT.js (5.16)
 * then clears `disconnecting` once an end has closed its stores: a socket of an earlier connect
 * attempt that closes after that (serve stopped while it reconnects after a broker restart) makes
 * its close handler set up the reconnect interval again, and the client reconnects every
 * `reconnectPeriod` for good, an unended process (test/fleet/serve.test.ts hung to its 600 s
 * time-out in about one run in twenty-five under load). With `reconnectPeriod` 0 no reconnect can
 * be set up any more, whatever closes later.
 */
export async function endBroker(client: MqttClient, force = false): Promise<void> {
  client.options.reconnectPeriod = 0;
  await client.endAsync(force).catch(() => undefined);
}
