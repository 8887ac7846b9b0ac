// The runtime's side of cloud-sync/agent/runtime-port.ts: what the MQTT agent may see and do.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { RuntimePort } from '../cloud-sync/agent/runtime-port.js';
import type { Runtime } from './runtime.js';
import { RUNTIME_VERSION } from './version.js';

export function createRuntimePort(rt: Runtime): RuntimePort {
  const stagingDir = join(rt.config.dataDir, 'staging');
  mkdirSync(stagingDir, { recursive: true, mode: 0o700 });
  return {
    deviceId: rt.config.device.id,
    runtimeVersion: RUNTIME_VERSION,
    bootId: rt.bootId,
    config: rt.config,
    clock: rt.clock,
    log: rt.log.child({ module: 'cloud' }),
    bus: rt.bus,
    outbox: rt.store.outbox,
    state: rt.store.state,
    stagingDir,
    models: {
      served: () => rt.installer.served(),
      install: (name, version, file, modelJson) => rt.installer.install(name, version, file, modelJson),
      rollback: (name) => rt.installer.rollback(name),
      remove: (name) => rt.installer.remove(name),
    },
    liveConfig: {
      apply: (partial) => rt.applyLiveConfig(partial),
      current: () => rt.liveConfig,
    },
    flushCache: () => {
      let n = 0;
      for (const m of new Set(rt.store.cache.stats().byModel.map((s) => s.model))) n += rt.store.cache.deleteModel(m);
      return n;
    },
    onInference: (fn) => rt.service.onOutcome(fn),
  };
}
