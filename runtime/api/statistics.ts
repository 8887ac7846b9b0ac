// Triton's statistics extension (docs/api.md, "Statistics"): the statistics of every served
// version, of one model's served versions, or of one version. Unknown models and versions are
// the same 404s as everywhere else (PERCH_ERR_MODEL_NOT_FOUND, PERCH_ERR_VERSION_NOT_FOUND);
// a model that loads on first use and has not been used yet has no served version, so no
// statistics (asking does not load it).
import type { ModelInstance } from '../batching/model-instance.js';
import type { ModelStatJson } from '../base/model-stats.js';
import type { ModelRegistry } from '../models/registry.js';
import { parseVersion } from '../inference/infer-service.js';

export interface StatisticsResponse {
  model_stats: ModelStatJson[];
}

export function modelStatistics(registry: ModelRegistry<ModelInstance>, name?: string, version?: string): StatisticsResponse {
  let served: ModelInstance[];
  if (name === undefined) {
    served = registry.instances().sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : a.version - b.version));
  } else if (version === undefined || version === '') {
    served = registry.statusOf(name).served.map((v) => registry.resolve(name, v));
  } else {
    served = [registry.resolve(name, parseVersion(version))];
  }
  return { model_stats: served.map((i) => i.stats.toJSON()) };
}
