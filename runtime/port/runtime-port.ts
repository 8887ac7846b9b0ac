// What a module the runtime starts without knowing it (the cloud-sync agent) may see and do, and
// nothing more. The runtime owns this port and builds it (create-port.ts); the agent depends on it
// and never reaches into runtime internals, so each side can be tested on its own against the real
// other side. Dependencies run one way: cloud-sync/ imports runtime/, never the reverse.
import type { Bus } from '../base/bus.js';
import type { Clock } from '../base/clock.js';
import type { PerchConfig } from '../config/schema.js';
import type { InferenceOutcome } from '../inference/infer-service.js';
import type { LiveConfig, LiveConfigResult } from '../live-config.js';
import type { Module } from '../base/lifecycle.js';
import type { Logger } from '../base/log.js';
import type { ServedModel } from '../models/installer.js';
import type { Outbox } from '../store/outbox.js';
import type { StateStore } from '../store/state-store.js';

export type { InferenceOutcome } from '../inference/infer-service.js';
export type { LiveConfig, LiveConfigResult } from '../live-config.js';
export type { ServedModel } from '../models/installer.js';

export interface RuntimePort {
  readonly deviceId: string;
  readonly runtimeVersion: string;
  /** A fresh UUID per process start. */
  readonly bootId: string;
  readonly config: Readonly<PerchConfig>;
  readonly clock: Clock;
  readonly log: Logger;
  /** The device's bus: the agent publishes `connectivity` here; `event` tells of new outbox events. */
  readonly bus: Bus;
  /** Durable event queue: claim / ack / release for the uploader. */
  readonly outbox: Outbox;
  /** Durable key -> JSON documents (desired and reported state, download progress). */
  readonly state: StateStore;
  /** Folder the agent may use for staging downloads; it survives restarts. */
  readonly stagingDir: string;

  models: {
    /** Served versions with their digests. */
    served(): ServedModel[];
    /**
     * Installs a verified model file as `version` of `name` and swaps it in: stage into the
     * repository, load, warm up, swap. The previous version stays on disk for rollback. On
     * failure nothing changes (the old version keeps serving) and the promise rejects with a
     * PerchError whose code says which step failed (MODEL_LOAD_FAILED, MODEL_CONFIG_MISMATCH,
     * MODEL_WARMUP_FAILED, MODEL_CONFIG_INVALID, ...).
     * `modelJson` (optional) replaces the model's model.json.
     */
    install(name: string, version: number, file: string, modelJson?: unknown): Promise<ServedModel>;
    /** Serves the previous version again and deletes the current one. Rejects if there is none. */
    rollback(name: string): Promise<ServedModel>;
    /** Stops serving a model and deletes it from the repository (desired `null`). */
    remove(name: string): Promise<void>;
  };

  liveConfig: {
    /** Validates `partial` (a partial LiveConfig) whole; applies it only if all of it is valid. */
    apply(partial: unknown): LiveConfigResult;
    current(): LiveConfig;
  };

  /** Deletes every result cache entry (the `flushCache` command). Returns how many. */
  flushCache(): number;

  /** Every inference outcome, for the rollback circuit breaker. Returns the unsubscribe function. */
  onInference(fn: (o: InferenceOutcome) => void): () => void;
}

/**
 * A module the runtime starts without knowing it (the cloud agent), made from the port. The binary
 * hands these to the Runtime (bin/modules.ts); they start after the jobs and before the API, and
 * stop in reverse.
 */
export type ModuleFactory = (port: RuntimePort) => Module | Promise<Module>;
