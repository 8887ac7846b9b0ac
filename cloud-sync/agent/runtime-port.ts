// What the cloud-sync agent needs from the runtime, and nothing more. The runtime implements it
// (runtime/cloud-port.ts); the agent never reaches into runtime internals, so each side can be
// tested on its own against the real other side.
import type { Bus } from '../../runtime/bus.js';
import type { Clock } from '../../runtime/clock.js';
import type { PerchConfig } from '../../runtime/config/schema.js';
import type { ErrorCode } from '../../runtime/errors.js';
import type { Logger } from '../../runtime/log.js';
import type { Outbox } from '../../runtime/store/outbox.js';
import type { StateStore } from '../../runtime/store/state-store.js';

export interface InferenceOutcome {
  model: string;
  version: number;
  ok: boolean;
  code?: ErrorCode;
}

/** A model version as the device serves it (for state/reported). */
export interface ServedModel {
  name: string;
  version: number;
  /** SHA-256 (hex) of the served model.onnx. */
  sha256: string;
  /** The version this one replaced, kept on disk for rollback (null when none). */
  previousVersion: number | null;
}

export type LiveConfigResult =
  | { ok: true; effective: LiveConfig }
  | { ok: false; error: { code: ErrorCode; message: string } };

/**
 * The settings that change without restart (docs/protocol.md section 5): a partial of the runtime
 * config, validated by the same schema. `models.overrides` = per-model batching and cache.
 */
export interface LiveConfig {
  log: { level: PerchConfig['log']['level'] };
  models: { overrides: PerchConfig['models']['overrides'] };
  cloud: { upload: PerchConfig['cloud']['upload'] };
}

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
