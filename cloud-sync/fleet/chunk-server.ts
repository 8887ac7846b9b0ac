// Answers `P/devices/{id}/models/request` from the fleet store: each chunk's raw bytes to
// `P/devices/{id}/models/{name}/{version}/chunks/{index}`, QoS 1, not retained. A request for a
// model the store does not hold, or starting past the end, is logged and counted, never thrown.
// A window reaching past the end is cut at the last chunk (the tail of a download).
import type { MqttClient } from 'mqtt';
import { PerchError } from '../../runtime/errors.js';
import type { Logger } from '../../runtime/log.js';
import { parsePayload } from '../protocol/parse.js';
import { modelsRequestSchema } from '../protocol/schemas.js';
import { topics } from '../protocol/topics.js';
import { chunkCount, readChunks, readSpec } from './model-store.js';
import { countIgnored, type ServeStats } from './serve-stats.js';

export interface ChunkServerContext {
  client: MqttClient;
  store: string;
  prefix: string;
  log: Logger;
  stats: ServeStats;
  maxPayloadBytes: number;
  /** Upper bound on chunks sent for one request (bounds memory and a greedy device). */
  maxChunksPerRequest: number;
}

export async function answerChunkRequest(ctx: ChunkServerContext, deviceId: string, topic: string, payload: Buffer): Promise<void> {
  const ignore = (reason: string, code: string, error: string): void => {
    countIgnored(ctx.stats, reason);
    ctx.log.warn({ topic, deviceId, code, reason, error }, 'chunk request ignored');
  };
  const parsed = parsePayload(modelsRequestSchema, payload, ctx.maxPayloadBytes);
  if (!parsed.ok) return ignore(parsed.reason, parsed.error.code, parsed.error.message);
  const req = parsed.value;
  ctx.stats.chunkRequests++;
  let spec;
  try {
    spec = readSpec(ctx.store, req.name, req.version);
  } catch (err) {
    const e = err instanceof PerchError ? err : new PerchError('PERCH_ERR_FLEET_MODEL_MISSING', String(err));
    return ignore('unknown-model', e.code, e.message);
  }
  const total = chunkCount(spec);
  if (req.from >= total) return ignore('out-of-range', 'PERCH_ERR_MQTT_PAYLOAD_INVALID', `chunk ${req.from} asked for; ${req.name} version ${req.version} has ${total}`);
  const count = Math.min(req.count, total - req.from, ctx.maxChunksPerRequest);
  const t = topics(ctx.prefix, deviceId);
  const sends: Promise<unknown>[] = [];
  let bytes = 0;
  await readChunks(ctx.store, req.name, spec, req.from, count, (index, data) => {
    bytes += data.length;
    sends.push(ctx.client.publishAsync(t.chunk(req.name, req.version, index), data, { qos: 1, retain: false }));
  });
  await Promise.all(sends);
  ctx.stats.chunksSent += count;
  ctx.stats.bytesSent += bytes;
  ctx.log.info({ deviceId, name: req.name, version: req.version, from: req.from, count, of: total, bytes }, 'chunks sent');
}
