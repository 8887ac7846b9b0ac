// zod schemas of every JSON payload of docs/protocol.md section 5, shared by the device agent and
// `perch fleet`. Objects strip unknown keys (a newer peer may add fields; an older one must
// still read the message), except where a document is copied through whole (config, model.json).
import { z } from 'zod';
import { labelsSchema } from '../../runtime/config/labels.js';

/** Device ids and model names end up in topics and paths: no '/', '+', '#', spaces or '..'. */
export const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$/;
export const deviceIdSchema = z.string().regex(NAME_PATTERN, 'letters, digits and _ . : - only (1-128 characters)');
export const modelNameSchema = deviceIdSchema;

/** Model versions are the repository's version folders: positive integers (docs/protocol.md section 1). */
export const modelVersionSchema = z.number().int().min(1).max(Number.MAX_SAFE_INTEGER);
/**
 * Text of an event that the fleet stores in a text column as is (its id, type, ts) comes out with
 * U+0000 replaced by U+FFFD: PostgreSQL's text cannot hold U+0000, and a row it refuses fails its
 * message for good (docs/fleet.md "Group commit"). The devices' API lets any type through, so the
 * event is stored, not refused: refusing would leave the batch, good events and all, to be sent
 * again forever.
 */
const storable = (s: string): string => (s.includes('\u0000') ? s.replaceAll('\u0000', '\ufffd') : s);
/** Timestamps: epoch milliseconds is what Perch sends; an ISO string is accepted from others. */
export const timestampSchema = z.union([z.number().nonnegative(), z.string().min(1).transform(storable)]);
export const sha256HexSchema = z.string().regex(/^[0-9a-f]{64}$/, 'SHA-256 as 64 lower-case hex digits');
export const base64Schema = z.string().regex(/^[A-Za-z0-9+/]+={0,2}$/, 'base64');
/** A JSON object copied through as is (live config, model.json). */
export const jsonObjectSchema = z.record(z.string(), z.unknown());
const errorSchema = z.object({ code: z.string(), message: z.string() });

/** An absolute http:// or https:// URL (a model spec's `url`: no file:, data: or other schemes). */
function isHttpUrl(s: string): boolean {
  try {
    const u = new URL(s);
    return u.protocol === 'http:' || u.protocol === 'https:';
  } catch {
    return false;
  }
}

/**
 * Optional extension (not in the table of docs/protocol.md section 5, ignored by peers that do not know it): the
 * device's event backlog when it sent the message, shown by `perch fleet devices`.
 */
export const outboxSummarySchema = z.object({
  count: z.number().int().min(0),
  bytes: z.number().int().min(0).optional(),
  oldestAgeMs: z.number().min(0).optional(),
});
export type OutboxSummary = z.infer<typeof outboxSummarySchema>;

// ---- device -> cloud ----

/** `P/devices/{id}/status`, retained; `online: false` is the Last Will and the clean-shutdown message. */
export const statusSchema = z.object({
  online: z.boolean(),
  ts: timestampSchema,
  runtimeVersion: z.string(),
  bootId: z.string(),
  outbox: outboxSummarySchema.optional(),
  /** Config `device.labels` (docs/fleet.md "Targeting devices"); absent from devices before labels. */
  labels: labelsSchema.optional(),
});
export type StatusMessage = z.infer<typeof statusSchema>;

export const eventSchema = z.object({
  id: z.string().min(1).max(128).transform(storable),
  /** Rises by 1 per event per device: the dedup key with deviceId. */
  seq: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER),
  ts: timestampSchema,
  type: z.string().min(1).transform(storable),
  payload: z.unknown(),
});
export type EventMessage = z.infer<typeof eventSchema>;

/** `P/devices/{id}/events`, not retained, at-least-once. */
export const eventsSchema = z.object({
  deviceId: deviceIdSchema,
  events: z.array(eventSchema),
});
export type EventsMessage = z.infer<typeof eventsSchema>;

export const MODEL_STATUSES = ['active', 'downloading', 'staged', 'failed'] as const;
/** Download progress of a "downloading" model, in chunks (reported at most every few seconds). */
export const downloadProgressSchema = z.object({
  staged: z.number().int().min(0),
  total: z.number().int().min(0),
});
export type DownloadProgressReport = z.infer<typeof downloadProgressSchema>;

export const reportedModelSchema = z.object({
  version: modelVersionSchema,
  sha256: sha256HexSchema,
  status: z.enum(MODEL_STATUSES),
  error: errorSchema.optional(),
  progress: downloadProgressSchema.optional(),
  /** What still serves while this entry is not "active" (null: nothing of this model serves). */
  active: z.object({ version: modelVersionSchema, sha256: sha256HexSchema }).nullable().optional(),
});

/** At most this many characters of `ignored.reason` (a device's own words, never the document's). */
export const MAX_IGNORED_REASON = 300;
/**
 * A desired document the device did not apply, and why: its version was not above the applied
 * one, it named too many models, or it was oversized, not JSON or broke the schema (docs/protocol.md
 * section 5). `version` is 0 when the device could not read one from the document.
 */
export const ignoredDesiredSchema = z.object({
  version: z.number().int().min(0),
  reason: z.string(),
  /** Added: a stable PERCH_ERR_* code (absent from devices older than it). */
  code: z.string().optional(),
});
export type IgnoredDesired = z.infer<typeof ignoredDesiredSchema>;

/** Models and versions in one health report, at most (a device reports what served in its window). */
export const MAX_HEALTH_ENTRIES = 256;
/** In-service health of one model version over the device's window (cloud-sync/agent/health.ts). */
export const versionHealthSchema = z.object({
  requests: z.number().int().min(0),
  errors: z.number().int().min(0),
  errorRate: z.number().min(0).max(1),
  p99Ms: z.number().min(0).nullable(),
});
export type VersionHealthReport = z.infer<typeof versionHealthSchema>;
/** state/reported `health`: `models[name][version]` over the last `windowMs`. */
export const healthReportSchema = z.object({
  windowMs: z.number().int().min(1),
  models: z
    .record(modelNameSchema, z.record(z.string().regex(/^[1-9][0-9]{0,15}$/), versionHealthSchema))
    .refine((m) => Object.values(m).reduce((n, v) => n + Object.keys(v).length, 0) <= MAX_HEALTH_ENTRIES, `at most ${MAX_HEALTH_ENTRIES} model versions`),
});
export type HealthReport = z.infer<typeof healthReportSchema>;
export type ReportedModel = z.infer<typeof reportedModelSchema>;

/** `P/devices/{id}/state/reported`, retained. desiredVersion is 0 before any desired document was applied. */
export const reportedSchema = z.object({
  desiredVersion: z.number().int().min(0),
  models: z.record(modelNameSchema, reportedModelSchema),
  config: jsonObjectSchema,
  /** Why the last desired config was refused (config is then the effective old one). */
  configError: errorSchema.optional(),
  ignored: ignoredDesiredSchema.optional(),
  ts: timestampSchema,
  outbox: outboxSummarySchema.optional(),
  labels: labelsSchema.optional(),
  health: healthReportSchema.optional(),
});
export type ReportedState = z.infer<typeof reportedSchema>;

/** `P/devices/{id}/models/request`: chunks `from` .. `from + count - 1`. */
export const modelsRequestSchema = z.object({
  name: modelNameSchema,
  version: modelVersionSchema,
  from: z.number().int().min(0),
  count: z.number().int().min(1),
});
export type ModelsRequest = z.infer<typeof modelsRequestSchema>;

// ---- cloud -> device ----

/** One model version in a desired document. `signature` is absent for unsigned models. */
export const modelSpecSchema = z.object({
  version: modelVersionSchema,
  sha256: sha256HexSchema,
  size: z.number().int().min(0),
  chunkSize: z.number().int().min(1),
  /** Version of the signed manifest (protocol/signing.ts); absent = 1 (no model.json covered). */
  manifest: z.number().int().min(1).max(1000).optional(),
  signature: base64Schema.optional(),
  config: jsonObjectSchema.optional(),
  /**
   * Where to fetch the bytes over HTTP(S) with Range requests instead of MQTT chunks
   * (docs/cloud-sync.md "Model bytes over HTTP"); the digest and signature are checked the same.
   */
  url: z.string().max(2048).refine(isHttpUrl, 'an http:// or https:// URL').optional(),
  /**
   * The SHA-256 of each chunk (raw 32 bytes each, in index order), base64 (protocol/chunks.ts): a
   * chunk whose bytes do not match is dropped and asked for again. Not signed; absent from
   * fleets older than it (the whole file's digest is then the only check).
   */
  chunkDigests: base64Schema.optional(),
});
export type ModelSpec = z.infer<typeof modelSpecSchema>;

/**
 * Models one desired document may name to serve (non-null specs), at most: each costs the device
 * its checks, a status entry in every state/reported it publishes and an event when refused, so
 * a document naming thousands (3,000 took a device 40 s and made state/reported 800 KB) is
 * ignored whole and reported as `ignored` (docs/cloud-sync.md "Desired and reported state").
 */
export const MAX_DESIRED_MODELS = 256;

/** `P/devices/{id}/state/desired`, retained. A `null` model is removed; models not named stay. */
export const desiredSchema = z.object({
  version: z.number().int().min(1),
  models: z.record(modelNameSchema, modelSpecSchema.nullable()).default({}),
  config: jsonObjectSchema.default({}),
});
export type DesiredState = z.infer<typeof desiredSchema>;

/** At most this many ranges in one ack message (a fleet coalesces the acks of one moment). */
export const MAX_ACK_RANGES = 4096;
/** `[from, to]`, inclusive, from <= to. */
export const seqRangeSchema = z
  .tuple([eventSchema.shape.seq, eventSchema.shape.seq])
  .refine(([from, to]) => from <= to, 'a range [from, to] with from <= to');

/**
 * `P/devices/{id}/events/ack`, QoS 1, not retained: the fleet has committed these seqs of this
 * device (each range inclusive). Ranges are facts, not a window: they may come in any order,
 * overlap, or repeat (two serve processes, re-sends), and the device deletes what they cover.
 */
export const eventsAckSchema = z.object({
  ranges: z.array(seqRangeSchema).min(1).max(MAX_ACK_RANGES),
});
export type EventsAck = z.infer<typeof eventsAckSchema>;

export const COMMANDS = ['reportState', 'rollback', 'flushCache'] as const;
/** `P/devices/{id}/commands`, not retained. */
export const commandSchema = z.object({
  id: z.string().min(1),
  command: z.enum(COMMANDS),
  args: jsonObjectSchema.optional(),
});
export type CommandMessage = z.infer<typeof commandSchema>;
