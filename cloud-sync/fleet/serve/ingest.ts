// Incoming device messages that serve writes to the fleet database: event batches (dedup on
// (deviceId, seq)), status and reported state. Called from the MQTT clients' handleMessage; each
// write goes into the next group commit (ingest-commit.ts), so the PUBACK goes back only after
// the transaction holding it committed; the device's own ack (acker.ts) goes out only for what
// is committed, duplicates included (docs/cloud-sync.md "Delivery guarantee").
// The device id is always the topic's (what the broker's ACL vouches for), never the payload's.
import type { Logger } from '../../../runtime/base/log.js';
import type { Tracing } from '../../../runtime/base/tracing.js';
import { parsePayload } from '../../protocol/parse.js';
import { eventsSchema, reportedSchema, statusSchema } from '../../protocol/schemas.js';
import type { IngestCommit } from './ingest-commit.js';
import type { IgnoredLog } from './ignored-log.js';
import { countIgnored, type ServeStats } from './stats.js';

export interface IngestContext {
  commit: IngestCommit;
  log: Logger;
  stats: ServeStats;
  maxPayloadBytes: number;
  /** Lines of ignored messages, bounded per device and reason and in all (ignored-log.ts). */
  ignored: IgnoredLog;
  /** Each stored batch is a `perch.fleet.ingest` span while on (docs/observability.md). */
  tracing?: Tracing;
}

/** Counted every time; a line at most once a second per device and reason (a device can send thousands). */
function ignore(ctx: IngestContext, deviceId: string, topic: string, reason: string, message: string): void {
  countIgnored(ctx.stats, reason);
  ctx.ignored.warn(`${reason}\u0000${deviceId}`, { topic, deviceId, code: 'PERCH_ERR_MQTT_PAYLOAD_INVALID', reason, error: message }, 'payload ignored');
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
    ignore(ctx, deviceId, topic, parsed.reason, parsed.error.message);
    return [];
  }
  // The topic is what the broker's ACL vouches for; a body naming another device is a lie or a bug.
  if (parsed.value.deviceId !== deviceId) {
    ignore(ctx, deviceId, topic, 'mismatch', `deviceId '${parsed.value.deviceId}' in a message on ${deviceId}'s topic`);
    return [];
  }
  const events = parsed.value.events;
  if (events.length === 0) return [];
  // Logged per commit by ingest-commit.ts (one line for the group, each batch at debug).
  const stored = await ctx.commit.submit({ kind: 'events', deviceId, events });
  ctx.stats.batches++;
  ctx.stats.eventsStored += stored;
  ctx.stats.duplicates += events.length - stored;
  return events.map((e) => e.seq);
}

export async function ingestStatus(ctx: IngestContext, deviceId: string, topic: string, payload: Buffer): Promise<void> {
  if (payload.length === 0) return; // a cleared retained message
  const parsed = parsePayload(statusSchema, payload, ctx.maxPayloadBytes);
  if (!parsed.ok) return ignore(ctx, deviceId, topic, parsed.reason, parsed.error.message);
  await ctx.commit.submit({ kind: 'status', deviceId, status: parsed.value, json: JSON.stringify(parsed.value) });
  ctx.stats.statusUpdates++;
  // debug: 10,000 devices connecting are 10,000 of these (their count is in the progress line).
  ctx.log.debug({ deviceId, online: parsed.value.online, runtimeVersion: parsed.value.runtimeVersion }, 'status');
}

export async function ingestReported(ctx: IngestContext, deviceId: string, topic: string, payload: Buffer): Promise<void> {
  if (payload.length === 0) return;
  const parsed = parsePayload(reportedSchema, payload, ctx.maxPayloadBytes);
  if (!parsed.ok) return ignore(ctx, deviceId, topic, parsed.reason, parsed.error.message);
  await ctx.commit.submit({ kind: 'reported', deviceId, json: JSON.stringify(parsed.value) });
  ctx.stats.reportedUpdates++;
  if (!ctx.log.isLevelEnabled('debug')) return;
  const models = Object.fromEntries(Object.entries(parsed.value.models).map(([n, m]) => [n, `${m.version}:${m.status}`]));
  ctx.log.debug({ deviceId, desiredVersion: parsed.value.desiredVersion, models }, 'reported');
}
