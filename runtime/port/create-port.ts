// The runtime's side of runtime-port.ts: builds the port from the runtime's parts. It takes the
// parts, not the Runtime class, so runtime.ts and this file do not import each other.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Bus } from '../base/bus.js';
import type { Clock } from '../base/clock.js';
import type { Tracing } from '../base/tracing.js';
import type { Logger } from '../base/log.js';
import { RUNTIME_VERSION } from '../base/version.js';
import type { PerchConfig } from '../config/schema.js';
import { EventLog } from '../events/event-log.js';
import type { InferService } from '../inference/infer-service.js';
import type { LiveConfig, LiveConfigResult } from '../config/live-config.js';
import type { ModelInstaller } from '../models/installer.js';
import type { Outbox } from '../store/outbox.js';
import type { StateStore } from '../store/state-store.js';
import type { PerchStore } from '../store/store.js';
import type { OutboxQueue, RuntimePort } from './runtime-port.js';
import { moveKeys, stateNamespace } from './state-namespace.js';

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
  readonly tracing?: Tracing;
  readonly liveConfig: { apply(partial: unknown): LiveConfigResult; current(): LiveConfig };
}

/** The agent's part of the state store (docs/store.md "State"); no runtime key starts with it. */
export const AGENT_STATE_PREFIX = 'cloud.';

/**
 * Where the agent kept its desired and reported documents before it had a namespace (they were
 * runtime STATE_KEYS then). Moved once, at start, so a device upgraded in place keeps them.
 */
export const LEGACY_AGENT_KEYS: Readonly<Record<string, string>> = {
  'shadow.desired': `${AGENT_STATE_PREFIX}desired`,
  'shadow.reported': `${AGENT_STATE_PREFIX}reported`,
};

/** The agent's namespace of `state`, its documents from before the namespace moved into it first. */
export function agentState(state: StateStore, log: Logger): StateStore {
  try {
    const moved = moveKeys(state, LEGACY_AGENT_KEYS);
    if (moved.length) log.info({ keys: moved }, 'agent state moved into its namespace');
  } catch (err) {
    // A read-only store: the documents stay where they are, the agent starts without them.
    log.warn({ err }, 'agent state from before the upgrade not moved');
  }
  return stateNamespace(state, AGENT_STATE_PREFIX);
}

/** The outbox as the uploader drains it; new events are heard of on the bus (event-log.ts tells it). */
export function outboxQueue(outbox: Outbox, bus: Bus): OutboxQueue {
  return {
    claim: (limit, maxBytes) => outbox.claim(limit, maxBytes),
    ack: (seqs) => outbox.ack(seqs),
    release: (seqs) => outbox.release(seqs),
    markSent: (seqs) => outbox.markSent(seqs),
    stats: () => outbox.stats(),
    onAppended: (listener) => bus.on('event', () => listener()),
  };
}

export function createRuntimePort(rt: PortParts): RuntimePort {
  const stagingDir = join(rt.config.dataDir, 'staging');
  mkdirSync(stagingDir, { recursive: true, mode: 0o700 });
  const log = rt.log.child({ module: 'cloud' });
  return {
    device: { id: rt.config.device.id, runtimeVersion: RUNTIME_VERSION, bootId: rt.bootId, labels: rt.config.device.labels },
    cloud: rt.config.cloud,
    clock: rt.clock,
    log,
    // The runtime's own event log, so the agent's events take the same way as every other one.
    events: new EventLog(rt.store.outbox, rt.bus, log),
    outbox: outboxQueue(rt.store.outbox, rt.bus),
    state: agentState(rt.store.state, log),
    connectivity: { publish: (state) => rt.bus.emit('connectivity', { state }) },
    cloudStatus: { ignored: (note) => rt.bus.emit('cloudIgnored', { note }) },
    models: {
      stagingDir,
      repositoryDir: rt.config.models.repository,
      served: () => rt.installer.served(),
      onChange: (listener) => rt.bus.on('model', () => listener()),
      install: (name, version, file, modelJson) => rt.installer.install(name, version, file, modelJson),
      rollback: (name) => rt.installer.rollback(name),
      remove: (name) => rt.installer.remove(name),
    },
    liveConfig: rt.liveConfig,
    cache: {
      flush: () => {
        let n = 0;
        for (const m of new Set(rt.store.cache.stats().byModel.map((s) => s.model))) n += rt.store.cache.deleteModel(m);
        return n;
      },
    },
    inference: { onOutcome: (fn) => rt.service.onOutcome(fn) },
    ...(rt.tracing ? { tracing: rt.tracing } : {}),
  };
}
