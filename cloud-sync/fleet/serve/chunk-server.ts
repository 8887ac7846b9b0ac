// Answers `P/devices/{id}/models/request` from the fleet store: each chunk's raw bytes to
// `P/devices/{id}/models/{name}/{version}/chunks/{index}`, QoS 1, not retained. A request for a
// model version not in the device's desired state (as the fleet store has it), one the store
// does not hold, or one starting past the end, is logged and counted, never thrown.
// A window reaching past the end is cut at the last chunk (the tail of a download).
import type { MqttClient } from 'mqtt';
import { PerchError } from '../../../runtime/base/errors.js';
import type { Logger } from '../../../runtime/base/log.js';
import { parsePayload } from '../../protocol/parse.js';
import { modelsRequestSchema, type DesiredState } from '../../protocol/schemas.js';
import { topics } from '../../protocol/topics.js';
import type { ModelFiles, OpenModel } from '../store/model-files.js';
import { chunkCount, readChunks } from '../store/model-store.js';
import { countIgnored, type ServeStats } from './stats.js';

export interface ChunkServerContext {
  client: MqttClient;
  /** The fleet store's model files, held open between requests. */
  files: ModelFiles;
  prefix: string;
  log: Logger;
  stats: ServeStats;
  maxPayloadBytes: number;
  /** Upper bound on chunks sent for one request (bounds memory and a greedy device). */
  maxChunksPerRequest: number;
  /** The desired document the fleet published for a device (fleet store): what it may fetch. */
  desiredOf(deviceId: string): Promise<DesiredState | undefined>;
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
  const total = chunkCount(spec);
  if (req.from >= total) {
    model.release();
    return ignore('out-of-range', 'PERCH_ERR_MQTT_PAYLOAD_INVALID', `chunk ${req.from} asked for; ${req.name} version ${req.version} has ${total}`);
  }
  const count = Math.min(req.count, total - req.from, ctx.maxChunksPerRequest);
  let bytes = 0;
  try {
    const t = topics(ctx.prefix, deviceId);
    const sends: Promise<unknown>[] = [];
    await readChunks(model.file, req.name, spec, req.from, count, (index, data) => {
      bytes += data.length;
      sends.push(ctx.client.publishAsync(t.chunk(req.name, req.version, index), data, { qos: 1, retain: false }));
    });
    await Promise.all(sends);
  } finally {
    model.release();
  }
  ctx.stats.chunksSent += count;
  ctx.stats.bytesSent += bytes;
  // Debug: a device asks once per chunk, so at info this was a line per 64 KiB (the progress
  // line has the counters).
  ctx.log.debug({ deviceId, name: req.name, version: req.version, from: req.from, count, of: total, bytes }, 'chunks sent');
}
