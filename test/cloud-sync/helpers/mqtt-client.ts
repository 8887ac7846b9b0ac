// Cloud-side stand-ins for the tests: a raw mqtt.js client, an events consumer with its own
// persistent session, a chunk responder serving a model file, and small waiting helpers.
import mqtt, { type MqttClient } from 'mqtt';
import { readRetained as readRetainedMessages } from '../../../cloud-sync/fleet/broker/retained.js';
import { toRanges, topics } from '../../../cloud-sync/protocol/index.js';

export const PREFIX = 'perch/v1';

export async function connectClient(url: string, opts: mqtt.IClientOptions = {}): Promise<MqttClient> {
  const c = mqtt.connect(url, { reconnectPeriod: 200, connectTimeout: 5000, ...opts });
  c.on('error', () => undefined);
  await new Promise<void>((resolve, reject) => {
    c.once('connect', () => resolve());
    setTimeout(() => reject(new Error('test client did not connect')), 5000).unref();
  });
  return c;
}

export { waitFor } from '../../helpers/wait.js';

export interface EventsConsumer {
  /** Every event as received, duplicates included. */
  raw: { seq: number; type: string; payload: unknown }[];
  /** First copy of each seq, in arrival order (dedup on (deviceId, seq)). */
  unique(): { seq: number; type: string; payload: unknown }[];
  batchSizes: number[];
  close(): Promise<void>;
}

/**
 * A consumer of a device's events with its own persistent session. Like `perch fleet serve` it
 * acks every batch it received on P/devices/{id}/events/ack (unless `ack` is false), so a device
 * in the default `cloud.delivery.ack: 'fleet'` mode deletes them.
 */
export async function eventsConsumer(url: string, deviceId: string, clientId = `consumer-${deviceId}`, ack = true): Promise<EventsConsumer> {
  const c = await connectClient(url, { clientId, clean: false });
  const raw: EventsConsumer['raw'] = [];
  const batchSizes: number[] = [];
  const ackTopic = topics(PREFIX, deviceId).eventsAck;
  c.on('message', (_t, payload) => {
    const msg = JSON.parse(payload.toString()) as { events: { seq: number; type: string; payload: unknown }[] };
    batchSizes.push(msg.events.length);
    for (const e of msg.events) raw.push({ seq: e.seq, type: e.type, payload: e.payload });
    if (ack && msg.events.length > 0) c.publish(ackTopic, JSON.stringify({ ranges: toRanges(msg.events.map((e) => e.seq)) }), { qos: 1 });
  });
  await c.subscribeAsync(topics(PREFIX, deviceId).events, { qos: 1 });
  return {
    raw,
    batchSizes,
    unique: () => {
      const seen = new Set<number>();
      return raw.filter((e) => (seen.has(e.seq) ? false : (seen.add(e.seq), true)));
    },
    close: () => c.endAsync(true),
  };
}

export interface ChunkResponder {
  /** Chunks sent, per request, in order. */
  requested: number;
  /** Chunks actually sent. */
  sent: number;
  requests: { from: number; count: number }[];
  /** Stops answering after this many chunks sent (null = no limit). */
  limit: number | null;
  /** Indexes to drop the first time they are asked for. */
  dropOnce: Set<number>;
  /**
   * Index -> how many more times to answer it with wrong bytes (one bit flipped, same length;
   * `short: true` one byte short instead); Infinity for always.
   */
  corrupt: Map<number, number>;
  short: boolean;
  close(): Promise<void>;
}

/** Answers `models/request` for one model version from `bytes`, `chunkSize` at a time. */
export async function chunkResponder(url: string, deviceId: string, name: string, version: number, bytes: Buffer, chunkSize: number): Promise<ChunkResponder> {
  const c = await connectClient(url, { clientId: `responder-${deviceId}-${Math.random().toString(36).slice(2, 8)}` });
  const t = topics(PREFIX, deviceId);
  const r: ChunkResponder = {
    requested: 0,
    sent: 0,
    requests: [],
    limit: null,
    dropOnce: new Set(),
    corrupt: new Map(),
    short: false,
    close: () => c.endAsync(true),
  };
  c.on('message', (_topic, payload) => {
    const req = JSON.parse(payload.toString()) as { name: string; version: number; from: number; count: number };
    if (req.name !== name || req.version !== version) return;
    r.requests.push({ from: req.from, count: req.count });
    r.requested += req.count;
    for (let i = req.from; i < req.from + req.count; i++) {
      if (r.limit !== null && r.sent >= r.limit) return;
      if (r.dropOnce.delete(i)) continue;
      let chunk = bytes.subarray(i * chunkSize, (i + 1) * chunkSize);
      if (chunk.length === 0) continue;
      const bad = r.corrupt.get(i) ?? 0;
      if (bad > 0) {
        r.corrupt.set(i, bad - 1);
        chunk = r.short ? chunk.subarray(0, chunk.length - 1) : Buffer.from(chunk);
        if (!r.short) chunk[chunk.length >> 1] = (chunk[chunk.length >> 1] ?? 0) ^ 0x01;
      }
      r.sent++;
      c.publish(t.chunk(name, version, i), chunk, { qos: 1 });
    }
  });
  await c.subscribeAsync(t.modelsRequest, { qos: 1 });
  return r;
}

/** Publishes the retained desired document (or clears it with an empty payload). */
export async function publishDesired(url: string, deviceId: string, doc: unknown): Promise<void> {
  const c = await connectClient(url, { clientId: `fleet-${Math.random().toString(36).slice(2, 8)}` });
  await c.publishAsync(topics(PREFIX, deviceId).desired, doc === null ? '' : JSON.stringify(doc), { qos: 1, retain: true });
  await c.endAsync();
}

/**
 * The retained message on a topic, or null when there is none. Read the way `perch fleet` reads
 * them (cloud-sync/fleet/broker/retained.ts): a probe published after the SUBSCRIBE comes back
 * after the retained messages, so "none" is known for sure, not guessed after a timer.
 */
export async function readRetained(url: string, topic: string): Promise<Record<string, unknown> | null> {
  const c = await connectClient(url, { clientId: `reader-${Math.random().toString(36).slice(2, 8)}` });
  try {
    const last = (await readRetainedMessages(c, PREFIX, [topic], 10_000)).at(-1);
    return last ? (JSON.parse(last.payload.toString()) as Record<string, unknown>) : null;
  } finally {
    await c.endAsync(true);
  }
}

/** The latest retained state/reported of a device. */
export function readReported(url: string, deviceId: string): Promise<Record<string, unknown> | null> {
  return readRetained(url, topics(PREFIX, deviceId).reported);
}
