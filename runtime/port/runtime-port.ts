// What a module the runtime starts without knowing it (the cloud-sync agent) may see and do, and
// nothing more. The runtime owns this port and builds it (create-port.ts); the agent depends on it
// and never reaches into runtime internals, so each side can be tested on its own against the real
// other side. Dependencies run one way: cloud-sync/ imports runtime/, never the reverse.
//
// Each piece is narrow on purpose: no whole config, no bus, no Outbox class, no store. The agent's
// classes each take the pieces they use (Pick<RuntimePort, ...>), not the port.
import type { Tracing } from '../base/tracing.js';
import type { IgnoredNote } from '../base/bus.js';
import type { Clock } from '../base/clock.js';
import type { Module } from '../base/lifecycle.js';
import type { Logger } from '../base/log.js';
import type { PerchConfig } from '../config/schema.js';
import type { InferenceOutcome } from '../inference/infer-service.js';
import type { LiveConfig, LiveConfigResult } from '../config/live-config.js';
import type { ServedModel } from '../models/installer.js';
import type { Outbox } from '../store/outbox.js';
import type { StateStore } from '../store/state-store.js';

export type { IgnoredNote } from '../base/bus.js';
export type { InferenceOutcome } from '../inference/infer-service.js';
export type { LiveConfig, LiveConfigResult } from '../config/live-config.js';
export type { ServedModel } from '../models/installer.js';
export type { OutboxEvent, OutboxStats } from '../store/outbox.js';
export type { StateStore } from '../store/state-store.js';

/** The device as its status message names it. */
export interface DeviceIdentity {
  readonly id: string;
  readonly runtimeVersion: string;
  /** A fresh UUID per process start. */
  readonly bootId: string;
  /** Config `device.labels`, reported in status and state/reported (what `perch fleet` selects by). */
  readonly labels: Readonly<Record<string, string>>;
}

/** The one config section the agent reads, as started (the live values come from liveConfig). */
export type CloudConfig = PerchConfig['cloud'];

/** The runtime's event log (runtime/events/event-log.ts): durable in the outbox, then told on the bus. */
export interface EventRecorder {
  /** Never throws: an event the store cannot take is logged, the caller goes on. */
  record(type: string, payload: unknown): void;
}

/** The outbox as the uploader drains it: claim, mark sent, ack, release, and news of new events. */
export interface OutboxQueue extends Pick<Outbox, 'claim' | 'ack' | 'release' | 'markSent' | 'stats'> {
  /** Called after each event made durable; returns the unsubscribe function. */
  onAppended(listener: () => void): () => void;
}

/** Tells the runtime (and through it /v1/health, status, metrics) whether the broker is reachable. */
export interface ConnectivityPublisher {
  publish(state: 'online' | 'offline'): void;
}

/** What the agent says in state/reported that the device's own status shows too (GET /v1/status, the web console). */
export interface CloudStatusPublisher {
  /** The last desired document not applied (state/reported `ignored`), or null once one is applied. */
  ignored(note: IgnoredNote | null): void;
}

export interface ModelControl {
  /** Folder the agent may use for staging downloads; it survives restarts. */
  readonly stagingDir: string;
  /** The model repository: installs copy into it, so updates need room on its disk too. */
  readonly repositoryDir: string;
  /** Served versions with their digests. */
  served(): ServedModel[];
  /**
   * Called when a model version is loaded, fails or is unloaded, by an update or on the device
   * itself (the HTTP repository API, docs/models.md). Returns the unsubscribe function.
   */
  onChange(listener: () => void): () => void;
  /**
   * Installs a verified model file as `version` of `name` and swaps it in: stage into the
   * repository, load, warm up, swap. The previous version stays on disk for rollback. On
   * failure nothing changes (the old version keeps serving) and the promise rejects with a
   * PerchError whose code says which step failed (MODEL_LOAD_FAILED, MODEL_CONFIG_MISMATCH,
   * MODEL_WARMUP_FAILED, MODEL_CONFIG_INVALID, ...).
   * `modelJson` (optional) replaces the model's model.json.
   */
  install(name: string, version: number, file: string, modelJson?: unknown): Promise<ServedModel>;
  /** Serves the previous version again (with the model.json it served with) and deletes the current one. Rejects if there is none. */
  rollback(name: string): Promise<ServedModel>;
  /** Stops serving a model and deletes it from the repository (desired `null`). */
  remove(name: string): Promise<void>;
}

export interface LiveConfigControl {
  /** Validates `partial` (a partial LiveConfig) whole; applies it only if all of it is valid. */
  apply(partial: unknown): LiveConfigResult;
  current(): LiveConfig;
}

export interface CacheControl {
  /** Deletes every result cache entry (the `flushCache` command). Returns how many. */
  flush(): number;
}

export interface InferenceObserver {
  /** Every inference outcome, for the rollback circuit breaker. Returns the unsubscribe function. */
  onOutcome(fn: (o: InferenceOutcome) => void): () => void;
}

export interface RuntimePort {
  readonly device: DeviceIdentity;
  readonly cloud: Readonly<CloudConfig>;
  readonly clock: Clock;
  readonly log: Logger;
  readonly events: EventRecorder;
  readonly outbox: OutboxQueue;
  /**
   * The agent's own namespace of the state store (create-port.ts): its keys cannot collide with
   * the runtime's, and it cannot read or write those. Durable key -> JSON documents.
   */
  readonly state: StateStore;
  readonly connectivity: ConnectivityPublisher;
  readonly cloudStatus: CloudStatusPublisher;
  readonly models: ModelControl;
  readonly liveConfig: LiveConfigControl;
  readonly cache: CacheControl;
  readonly inference: InferenceObserver;
  /** OpenTelemetry (docs/observability.md): the agent traces uploads and model updates while `enabled`. */
  readonly tracing?: Tracing;
}

/**
 * A module the runtime starts without knowing it (the cloud agent), made from the port. The binary
 * hands these to the Runtime (bin/modules.ts); they start after the jobs and before the API, and
 * stop in reverse.
 */
export type ModuleFactory = (port: RuntimePort) => Module | Promise<Module>;
