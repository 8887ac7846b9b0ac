// Plain mqtt.js clients for the MQTT benchmarks: the consumer that counts arrivals (both sides
// are counted by the same code), and a QoS 1 publisher with a fixed in-flight window (the raw
// baseline). Nothing here belongs to Perch: it is what an application would write with mqtt.js.
import mqtt, { type MqttClient } from 'mqtt';
import { toRanges } from '../../cloud-sync/protocol/index.js';

export async function connectBench(url: string, opts: mqtt.IClientOptions = {}): Promise<MqttClient> {
  const c = mqtt.connect(url, { reconnectPeriod: 20, connectTimeout: 5000, ...opts });
  c.on('error', () => undefined);
  await new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('bench MQTT client did not connect')), 5000);
    c.once('connect', () => {
      clearTimeout(t);
      resolve();
    });
  });
  return c;
}

export interface EventCounter {
  /** Distinct seqs seen of the counted type (dedup on seq, as a consumer must). */
  readonly unique: number;
  readonly messages: number;
  readonly duplicates: number;
  readonly payloadBytes: number;
  /** performance.now() when `unique` reached `target`, or null. */
  readonly doneAt: number | null;
  /** Resolves at `target` unique events, rejects after `timeoutMs`. */
  done(timeoutMs: number): Promise<number>;
  /** The first `status` message with online: true (its payload), if the status topic is subscribed. */
  online: { ts: number; receivedAt: number } | null;
  close(): Promise<void>;
}

/**
 * A persistent-session consumer of `P/devices/{id}/events` messages ({"deviceId","events":[...]})
 * counting events of `type` by seq. Subscribes to `statusTopic` too when given. With `ackTopic`
 * it acks what it received the way `perch fleet serve` does (cloud-sync/fleet/serve/acker.ts: the
 * seqs of 25 ms as ranges in one QoS 1 message), without a database behind it.
 */
export async function eventCounter(
  url: string, clientId: string, eventsTopic: string, type: string, target: number, statusTopic?: string, ackTopic?: string, clean = false,
): Promise<EventCounter> {
  // clean: true for a shared subscription: Mosquitto restores a session without its $share
  // subscriptions, and mqtt.js subscribes again only when the session is not present.
  const c = await connectBench(url, { clientId, clean });
  let toAck: number[] = [];
  const flushAcks = (): void => {
    const seqs = toAck;
    toAck = [];
    c.publish(ackTopic as string, JSON.stringify({ ranges: toRanges(seqs) }), { qos: 1 });
  };
  const seen = new Uint8Array(target * 2 + 1024);
  let resolveDone: (t: number) => void = () => undefined;
  const donePromise = new Promise<number>((r) => (resolveDone = r));
  const counter: EventCounter = {
    unique: 0,
    messages: 0,
    duplicates: 0,
    payloadBytes: 0,
    doneAt: null,
    online: null,
    done: (timeoutMs) =>
      new Promise((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`consumer has ${counter.unique} of ${target} events after ${timeoutMs} ms`)), timeoutMs);
        void donePromise.then((at) => {
          clearTimeout(t);
          resolve(at);
        });
      }),
    close: async () => {
      // Clean session on the way out, so the broker does not keep queuing for it.
      await c.endAsync(true);
    },
  };
  const mut = counter as { -readonly [K in keyof EventCounter]: EventCounter[K] };
  c.on('message', (topic, payload) => {
    if (topic === statusTopic) {
      const s = JSON.parse(payload.toString()) as { online: boolean; ts: number };
      if (s.online && !mut.online) mut.online = { ts: s.ts, receivedAt: performance.now() };
      return;
    }
    mut.messages++;
    mut.payloadBytes += payload.length;
    const msg = JSON.parse(payload.toString()) as { events: { seq: number; type: string }[] };
    if (ackTopic && msg.events.length > 0) {
      if (toAck.length === 0) setTimeout(flushAcks, 25); // acker.ts ACK_DELAY_MS
      for (const e of msg.events) toAck.push(e.seq);
    }
    for (const e of msg.events) {
      if (e.type !== type) continue;
      if (seen[e.seq]) {
        mut.duplicates++;
        continue;
      }
      seen[e.seq] = 1;
      if (++mut.unique === target) {
        mut.doneAt = performance.now();
        resolveDone(mut.doneAt);
      }
    }
  });
  await c.subscribeAsync(eventsTopic, { qos: 1 });
  if (statusTopic) await c.subscribeAsync(statusTopic, { qos: 1 });
  return counter;
}

/**
 * Publishes `count` QoS 1 messages (`make(i)`) on one connection as fast as PUBACKs allow with
 * at most `window` unacknowledged at a time. Resolves when the last PUBACK is in.
 */
export function publishWindowed(c: MqttClient, topic: string | ((i: number) => string), count: number, window: number, make: (i: number) => string | Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    let next = 0;
    let acked = 0;
    let failed = false;
    const pump = () => {
      while (!failed && next < count && next - acked < window) {
        const i = next++;
        c.publish(typeof topic === 'string' ? topic : topic(i), make(i), { qos: 1 }, (err) => {
          if (err) {
            failed = true;
            reject(err);
            return;
          }
          if (++acked === count) resolve();
          else pump();
        });
      }
    };
    pump();
  });
}
