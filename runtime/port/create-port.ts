// The runtime's side of runtime-port.ts: builds the port from the runtime's parts. It takes the
// parts, not the Runtime class, so runtime.ts and this file do not import each other.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Bus } from '../base/bus.js';
import type { Clock } from '../base/clock.js';
import type { PerchConfig } from '../config/schema.js';
import type { InferService } from '../inference/infer-service.js';
import type { LiveConfig, LiveConfigResult } from '../live-config.js';
import type { Logger } from '../base/log.js';
import type { ModelInstaller } from '../models/installer.js';
import type { PerchStore } from '../store/store.js';
import { RUNTIME_VERSION } from '../base/version.js';
import type { RuntimePort } from './runtime-port.js';

/** What the port is made of: the runtime's parts and its live-config handling. */
export interface PortParts {
  readonly config: Readonly<PerchConfig>;
  readonly bootId: string;
  readonly clock: Clock;
  readonly log: Logger;
  readonly bus: Bus;
  readonly store: PerchStore;
  readonly installer: ModelInstaller;
  readonly service: InferService;
  readonly liveConfig: { apply(partial: unknown): LiveConfigResult; current(): LiveConfig };
}

export function createRuntimePort(rt: PortParts): RuntimePort {
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
    liveConfig: rt.liveConfig,
    flushCache: () => {
      let n = 0;
      for (const m of new Set(rt.store.cache.stats().byModel.map((s) => s.model))) n += rt.store.cache.deleteModel(m);
      return n;
    },
    onInference: (fn) => rt.service.onOutcome(fn),
  };
}
