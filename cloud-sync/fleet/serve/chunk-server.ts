// Answers `P/devices/{id}/models/request` from the fleet store: each chunk's raw bytes to
// `P/devices/{id}/models/{name}/{version}/chunks/{index}`, QoS 1, not retained. A request for a
// model version not in the device's desired state (as the fleet store has it), one the store
// does not hold, or one starting past the end, is logged and counted, never thrown.
// A window reaching past the end is cut at the last chunk (the tail of a download).
// The chunks asked for join the device's queue (chunk-share.ts: devices take turns, a bounded
// queue each, bounded bytes in flight). A device more requests ahead of the chunks sent to it
// than its credit (request-credit.ts) is refused before its request is parsed, one whose queue
// is full before its desired state is read (docs/fleet.md "serve", "A device's share").
import type { MqttClient } from 'mqtt';
import { PerchError } from '../../../runtime/base/errors.js';
import type { Logger } from '../../../runtime/base/log.js';
import { parsePayload } from '../../protocol/parse.js';
import { modelsRequestSchema, type DesiredState } from '../../protocol/schemas.js';
import { topics } from '../../protocol/topics.js';
import type { ModelFiles, OpenModel } from '../store/model-files.js';
import { chunkCount, readChunk } from '../store/model-store.js';
import type { ChunkShare, ChunkToSend } from './chunk-share.js';
import type { IgnoredLog } from './ignored-log.js';
import type { RequestCredit } from './request-credit.js';
import { countIgnored, type ServeStats } from './stats.js';

export interface ChunkServerContext {
  client: MqttClient;
  /** The fleet store's model files, held open between requests. */
  files: ModelFiles;
  prefix: string;
  log: Logger;
  stats: ServeStats;
  maxPayloadBytes: number;
  /** Upper bound on chunks taken from one request. */
  maxChunksPerRequest: number;
  /** The desired document the fleet published for a device (fleet store): what it may fetch. */
  desiredOf(deviceId: string): Promise<DesiredState | undefined>;
  /** Each device's queue and turn (chunk-share.ts). */
  share: ChunkShare;
  /** Requests looked at per device (request-credit.ts). */
  credit: RequestCredit;
  /** Lines about refused requests, at most one per reason and device a second. */
  ignored: IgnoredLog;
}

const OVER_SHARE = 'PERCH_ERR_FLEET_CHUNK_SHARE_EXCEEDED';

function ignoreRequest(ctx: ChunkServerContext, deviceId: string, topic: string, reason: string, code: string, error: string): void {
  countIgnored(ctx.stats, reason);
  ctx.ignored.warn(`${reason}\u0000${deviceId}`, { topic, deviceId, code, reason, error }, 'chunk request ignored');
}

/**
 * Whether a request of the device is looked at (its credit, request-credit.ts); else it is counted
 * and refused here, synchronously, before anything is parsed: a flood costs serve the MQTT packet
 * and this.
 */
export function admitChunkRequest(ctx: ChunkServerContext, deviceId: string, topic: string): boolean {
  if (ctx.credit.take(deviceId)) return true;
  ignoreRequest(ctx, deviceId, topic, 'too-many-requests', OVER_SHARE, `${deviceId} is ${ctx.credit.max} requests ahead of the chunks sent to it`);
  return false;
}

/** A request admitted (admitChunkRequest): its chunks join the device's queue. */
export async function answerChunkRequest(ctx: ChunkServerContext, deviceId: string, topic: string, payload: Buffer): Promise<void> {
  const ignore = (reason: string, code: string, error: string): void => ignoreRequest(ctx, deviceId, topic, reason, code, error);
  const parsed = parsePayload(modelsRequestSchema, payload, ctx.maxPayloadBytes);
  if (!parsed.ok) return ignore(parsed.reason, parsed.error.code, parsed.error.message);
  const req = parsed.value;
  ctx.stats.chunkRequests++;
  if (ctx.share.room(deviceId) <= 0) {
    ctx.stats.chunksRefused += Math.min(req.count, ctx.maxChunksPerRequest);
    return ignore('queue-full', OVER_SHARE, `${deviceId} already has ${ctx.share.maxQueuedPerDevice} chunks waiting to be sent`);
  }
  // Confinement: a device gets only the model versions in its own desired state, never one
  // pushed to another device (the topic, which the broker's ACL binds to the device, says who asks).
  if ((await ctx.desiredOf(deviceId))?.models[req.name]?.version !== req.version) {
    return ignore('not-desired', 'PERCH_ERR_FLEET_MODEL_MISSING', `${req.name} version ${req.version} is not in the desired state the fleet published for ${deviceId}`);
  }
  let model: OpenModel;
  try {
    model = await ctx.files.get(req.name, req.version);
  } catch (err) {
    const e = err instanceof PerchError ? err : new PerchError('PERCH_ERR_FLEET_MODEL_MISSING', String(err));
    return ignore('unknown-model', e.code, e.message);
  }
  const { spec } = model;
  model.release(); // read when the device's turn comes (sendChunk)
  const total = chunkCount(spec);
  if (req.from >= total) {
    return ignore('out-of-range', 'PERCH_ERR_MQTT_PAYLOAD_INVALID', `chunk ${req.from} asked for; ${req.name} version ${req.version} has ${total}`);
  }
  const count = Math.min(req.count, total - req.from, ctx.maxChunksPerRequest);
  const q = ctx.share.add(deviceId, { name: req.name, version: req.version, size: spec.size, chunkSize: spec.chunkSize }, req.from, count);
  ctx.stats.chunkDuplicates += q.duplicates;
  if (q.refused > 0) {
    ctx.stats.chunksRefused += q.refused;
    if (q.queued === 0) return ignore('queue-full', OVER_SHARE, `${deviceId} already has ${ctx.share.maxQueuedPerDevice} chunks waiting to be sent`);
    ctx.ignored.warn(`cut\u0000${deviceId}`, { topic, deviceId, code: OVER_SHARE, reason: 'queue-full', queued: q.queued, refused: q.refused }, 'chunk request cut');
  }
  // Debug: a device asks once per chunk, so at info this was a line per 64 KiB (the progress
  // line has the counters).
  ctx.log.debug({ deviceId, name: req.name, version: req.version, from: req.from, count, of: total, ...q }, 'chunks queued');
}

/** Reads one chunk and publishes it; resolves once the broker acknowledged it. Never throws. */
export async function sendChunk(ctx: ChunkServerContext, c: ChunkToSend): Promise<void> {
  let data: Buffer;
  let model: OpenModel | undefined;
  try {
    model = await ctx.files.get(c.name, c.version);
    const { spec } = model;
    // The version may have been pushed again since the request (another file under its number).
    if (c.index >= chunkCount(spec)) {
      countIgnored(ctx.stats, 'out-of-range');
      return;
    }
    data = await readChunk(model.file, c.name, spec, c.index);
  } catch (err) {
    countIgnored(ctx.stats, 'error');
    ctx.ignored.warn(`read\u0000${c.name}\u0000${c.version}`, { err, deviceId: c.deviceId, name: c.name, version: c.version, index: c.index }, 'chunk not read');
    return;
  } finally {
    model?.release();
  }
  try {
    await ctx.client.publishAsync(topics(ctx.prefix, c.deviceId).chunk(c.name, c.version, c.index), data, { qos: 1, retain: false });
    ctx.stats.chunksSent++;
    ctx.stats.bytesSent += data.length;
  } catch (err) {
    countIgnored(ctx.stats, 'error');
    ctx.ignored.warn('publish', { err, deviceId: c.deviceId }, 'chunk not sent');
  }
}
