// `models.overrides` (runtime config, changed live by the cloud) over model.json: batching and
// cache settings of a model, so a fleet can tune a device without touching its repository.
// The result is checked whole: an override of priorityLevels below model.json's defaultPriority
// (or a defaultPriority above its priorityLevels) was taken, live and at load, and then every
// request that gave no priority was refused 400 (PERCH_ERR_INVALID_PARAMETER), the model as good as
// down, and the live config persisted across reboots.
import { PerchError } from '../base/errors.js';
import { batchingConflict, type ModelConfigFile, type ModelOverrides } from './model-config.js';

/** model.json with the overrides over it; throws PERCH_ERR_MODEL_CONFIG_INVALID when they contradict it. */
export function withOverrides(file: ModelConfigFile, o: ModelOverrides | undefined): ModelConfigFile {
  if (!o) return file;
  const merged = { ...file, batching: { ...file.batching, ...o.batching }, cache: { ...file.cache, ...o.cache } };
  const conflict = batchingConflict(merged.batching);
  if (conflict) throw new PerchError('PERCH_ERR_MODEL_CONFIG_INVALID', `models.overrides over model.json: ${conflict}`);
  return merged;
}

/** Why these overrides cannot go over this model.json, or null. */
export function overridesIssue(file: ModelConfigFile, o: ModelOverrides | undefined): string | null {
  try {
    withOverrides(file, o);
    return null;
  } catch (err) {
    return (err as Error).message;
  }
}
