// Live config (docs/protocol.md section 5, desired.config): the settings that change without restart —
// log level, per-model batching and cache (models.overrides), event upload batch size and rate.
// A document is validated whole, by the same schema as the start-up config (merged over the
// current settings), and applied only if all of it is valid; otherwise nothing changes and the
// reason is returned. The applied settings are persisted, so a reboot keeps them.
import { z } from 'zod';
import { formatIssues } from '../base/zod-issues.js';
import { configSchema, type PerchConfig } from './schema.js';
import type { ErrorCode } from '../base/errors.js';

/**
 * The settings that change without restart (docs/protocol.md section 5): a partial of the runtime
 * config, validated by the same schema. `models.overrides` = per-model batching and cache.
 */
export interface LiveConfig {
  log: { level: PerchConfig['log']['level'] };
  models: { overrides: PerchConfig['models']['overrides'] };
  cloud: { upload: PerchConfig['cloud']['upload'] };
}

export type LiveConfigResult =
  | { ok: true; effective: LiveConfig }
  | { ok: false; error: { code: ErrorCode; message: string } };

/** What a desired.config may hold: partials of the live keys, nothing else. */
const livePartialSchema = z.strictObject({
  log: configSchema.shape.log.unwrap().partial().optional(),
  models: z.strictObject({ overrides: configSchema.shape.models.unwrap().shape.overrides.unwrap() }).partial().optional(),
  cloud: z.strictObject({ upload: configSchema.shape.cloud.unwrap().shape.upload.unwrap().partial() }).partial().optional(),
});

export const LIVE_KEYS = ['log.level', 'models.overrides', 'cloud.upload.batchSize', 'cloud.upload.maxEventsPerSecond'];

export function liveOf(config: Readonly<PerchConfig>): LiveConfig {
  return {
    log: { level: config.log.level },
    models: { overrides: config.models.overrides },
    cloud: { upload: config.cloud.upload },
  };
}

function liveIssues(error: z.ZodError): string {
  return `(only ${LIVE_KEYS.join(', ')} change without restart):\n${formatIssues(error)}`;
}

/**
 * What a device would refuse in a desired.config document on its own (keys that are not live,
 * values out of range), or null when there is nothing. The fleet tool checks a document with
 * this before publishing it (docs/fleet.md, config).
 */
export function liveDocumentIssues(partial: unknown): string | null {
  const shape = livePartialSchema.safeParse(partial ?? {});
  return shape.success ? null : liveIssues(shape.error);
}

/**
 * Checks a partial live config against the current one; returns the new effective live config
 * or why it is refused. Pure: applying is the caller's job.
 */
export function validateLive(current: Readonly<PerchConfig>, partial: unknown): LiveConfigResult {
  const shape = livePartialSchema.safeParse(partial ?? {});
  if (!shape.success) {
    return { ok: false, error: { code: 'PERCH_ERR_LIVE_CONFIG_INVALID', message: `live config refused ${liveIssues(shape.error)}` } };
  }
  const p = shape.data;
  // Overrides are replaced per model, so a fleet can also take a setting back off.
  const merged = {
    ...current,
    log: { ...current.log, ...p.log },
    models: { ...current.models, overrides: { ...current.models.overrides, ...p.models?.overrides } },
    cloud: { ...current.cloud, upload: { ...current.cloud.upload, ...p.cloud?.upload } },
  };
  const full = configSchema.safeParse(merged);
  if (!full.success) {
    return { ok: false, error: { code: 'PERCH_ERR_LIVE_CONFIG_INVALID', message: `live config refused:\n${formatIssues(full.error)}` } };
  }
  return { ok: true, effective: liveOf(full.data) };
}
