// Gauges the runtime's own metrics read when scraped (docs/protocol.md section 6): each known
// model version's queue depth and readiness, and whether the cloud link is up.
import { Gauge, type Registry } from 'prom-client';
import type { ModelInstance } from './batching/model-instance.js';
import type { ModelRegistry } from './models/registry.js';

/** Every known version for perch_queue_depth and perch_model_ready: failed ones too (ready 0). */
export function versionGauges(registry: ModelRegistry<ModelInstance>): Array<{ model: string; version: string; depth: number; ready: boolean }> {
  return registry.status().flatMap((m) =>
    m.versions.map((v) => {
      const depth = v.state === 'ready' ? registry.resolve(m.name, v.version).batcher.depth : 0;
      return { model: m.name, version: String(v.version), depth, ready: v.state === 'ready' };
    }),
  );
}

/** perch_cloud_connected: 1 while connected to the cloud broker. */
export function registerConnectedGauge(metrics: Registry, online: () => boolean): void {
  const connected: Gauge = new Gauge({
    name: 'perch_cloud_connected', help: '1 while connected to the cloud broker.', registers: [metrics],
    collect: () => connected.set(online() ? 1 : 0),
  });
}
