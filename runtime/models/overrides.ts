// `models.overrides` (runtime config, changed live by the cloud) over model.json: batching and
// cache settings of a model, so a fleet can tune a device without touching its repository.
import type { ModelConfigFile, ModelOverrides } from './model-config.js';

export function withOverrides(file: ModelConfigFile, o: ModelOverrides | undefined): ModelConfigFile {
  if (!o) return file;
  return { ...file, batching: { ...file.batching, ...o.batching }, cache: { ...file.cache, ...o.cache } };
}
