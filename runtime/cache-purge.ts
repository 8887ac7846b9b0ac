// An unloaded version's result-cache entries can never be hit again: their space is freed as
// soon as the bus says the version was unloaded. A store that cannot delete (read-only, full)
// is logged, and serving goes on.
import type { Bus } from './base/bus.js';
import type { Logger } from './base/log.js';
import type { ResultCache } from './store/result-cache.js';

/** Listens until the returned function is called. */
export function purgeCacheOfUnloadedVersions(bus: Bus, cache: Pick<ResultCache, 'deleteModel'>, log: Logger): () => void {
  return bus.on('model', (e) => {
    if (e.state !== 'unloaded' || e.version === null) return;
    try {
      cache.deleteModel(e.name, e.version);
    } catch (err) {
      log.warn({ err, model: e.name }, 'could not delete cache entries of an unloaded version');
    }
  });
}
