// Incoming device messages that serve writes to the fleet database: event batches (dedup on
// (deviceId, seq)), status and reported state. Called from the MQTT client's handleMessage, so
// the PUBACK goes back only after the batch is committed; the device's own ack (acker.ts) goes
// out only for what is committed, duplicates included (docs/cloud-sync.md "Delivery guarantee").
// The device id is always the topic's (what the broker's ACL vouches for), never the payload's.
import type { Logger } from '../../../runtime/base/log.js';
import type { Tracing } from '../../../runtime/base/tracing.js';
import { parsePayload } from '../../protocol/parse.js';
import { eventsSchema, reportedSchema, statusSchema } from '../../protocol/schemas.js';
import type { FleetStore } from '../store/fleet-store.js';
import { countIgnored, type ServeStats } from './stats.js';

export interface IngestContext {
  db: FleetStore;
  log: Logger;
  stats: ServeStats;
  maxPayloadBytes: number;
  now: () => number;
  /** Each stored batch is a `perch.fleet.ingest` span while on (docs/observability.md). */
  tracing?: Tracing;
}

function ignore(ctx: IngestContext, topic: string, reason: string, message: string): void {
  countIgnored(ctx.stats, reason);
  ctx.log.warn({ topic, code: 'PERCH_ERR_MQTT_PAYLOAD_INVALID', reason, error: message }, 'payload ignored');
}

/**
 * Stores a batch; returns the seqs now held (new and duplicates, to ack), or [] when ignored.
 * `traceparent`: the message's MQTT v5 user property (the device's upload span), if any.
 */
export async function ingestEvents(ctx: IngestContext, deviceId: string, topic: string, payload: Buffer, traceparent?: string): Promise<number[]> {
  const tracing = ctx.tracing;
  if (!tracing?.enabled) return storeEvents(ctx, deviceId, topic, payload);
  const span = tracing.startSpan('perch.fleet.ingest', { parent: traceparent, kind: 'consumer', attributes: { 'perch.device.id': deviceId } });
  try {
    const seqs = await storeEvents(ctx, deviceId, topic, payload);
    span.setAttribute('perch.events', seqs.length);
    tracing.end(span);
    return seqs;
  } catch (err) {
    tracing.end(span, 'PERCH_ERR_INTERNAL', (err as Error).message);
    throw err;
  }
}

async function storeEvents(ctx: IngestContext, deviceId: string, topic: string, payload: Buffer): Promise<number[]> {
  const parsed = parsePayload(eventsSchema, payload, ctx.maxPayloadBytes);
  if (!parsed.ok) {
    ignore(ctx, topic, parsed.reason, parsed.error.message);
    return [];
  }
  // The topic is what the broker's ACL vouches for; a body naming another device is a lie or a bug.
  if (parsed.value.deviceId !== deviceId) {
    ignore(ctx, topic, 'mismatch', `deviceId '${parsed.value.deviceId}' in a message on ${deviceId}'s topic`);
    return [];
  }
  const events = parsed.value.events;
  if (events.length === 0) return [];
  const { stored, duplicates } = await ctx.db.storeEvents(deviceId, events, ctx.now());
  ctx.stats.batches++;
  ctx.stats.eventsStored += stored;
  ctx.stats.duplicates += duplicates;
  const seqs = events.map((e) => e.seq);
  let first = Infinity;
  let last = 0;
  for (const s of seqs) {
    if (s < first) first = s;
    if (s > last) last = s;
  }
  ctx.log.info({ deviceId, stored, duplicates, firstSeq: first, lastSeq: last }, 'events');
  return seqs;
}

export async function ingestStatus(ctx: IngestContext, deviceId: string, topic: string, payload: Buffer): Promise<void> {
  if (payload.length === 0) return; // a cleared retained message
  const parsed = parsePayload(statusSchema, payload, ctx.maxPayloadBytes);
  if (!parsed.ok) return ignore(ctx, topic, parsed.reason, parsed.error.message);
  await ctx.db.recordStatus(deviceId, parsed.value, JSON.stringify(parsed.value), ctx.now());
  ctx.stats.statusUpdates++;
  ctx.log.info({ deviceId, online: parsed.value.online, runtimeVersion: parsed.value.runtimeVersion }, 'status');
}

export async function ingestReported(ctx: IngestContext, deviceId: string, topic: string, payload: Buffer): Promise<void> {
  if (payload.length === 0) return;
  const parsed = parsePayload(reportedSchema, payload, ctx.maxPayloadBytes);
  if (!parsed.ok) return ignore(ctx, topic, parsed.reason, parsed.error.message);
  await ctx.db.recordReported(deviceId, JSON.stringify(parsed.value), ctx.now());
  ctx.stats.reportedUpdates++;
  const models = Object.fromEntries(Object.entries(parsed.value.models).map(([n, m]) => [n, `${m.version}:${m.status}`]));
  ctx.log.info({ deviceId, desiredVersion: parsed.value.desiredVersion, models }, 'reported');
}
