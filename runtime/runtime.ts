// The composition root: builds every module from the config and wires them. No logic of its own.
// Start order: store -> models -> jobs -> the modules it is given (bin/modules.ts: the cloud
// agent, which it does not know; they get runtime-port.ts) -> api; stop in reverse, so the last
// answers and the last events are written before the database closes.
import { randomUUID } from 'node:crypto';
import type { Server } from 'node:http';
import { isDeepStrictEqual } from 'node:util';
import { Gauge } from 'prom-client';
import { createRuntimePort } from './port/create-port.js';
import type { ModuleFactory, RuntimePort } from './port/runtime-port.js';
import { liveOf, validateLive, type LiveConfig, type LiveConfigResult } from './config/live-config.js';
import { ModelInstaller } from './models/installer.js';
import { STATE_KEYS } from './store/state-store.js';
import type { AddressInfo } from 'node:net';
import { Bus } from './base/bus.js';
import { systemClock, type Clock } from './base/clock.js';
import type { PerchConfig } from './config/schema.js';
import { ClientBudget } from './api/client-budget.js';
import { createHttpServer, listen } from './api/http/server.js';
import { httpScopes } from './api/http/scopes.js';
import { registerClientMetrics } from './api/client-metrics.js';
import { WsApi } from './api/ws/server.js';
import { GrpcApi } from './api/grpc/server.js';
import { listenOnSocket, parseSocketMode, removeSocketFile } from './api/unix-socket.js';
import { RequestGuard } from './api/request-guard.js';
import { resolveApiToken, type ResolvedApiToken } from './api/api-token.js';
import { EventLog } from './events/event-log.js';
import { InferService } from './inference/infer-service.js';
import { FailureLog } from './inference/failure-log.js';
import { JobScheduler } from './jobs/scheduler.js';
import { storeJobs } from './jobs/store-jobs.js';
import { ModuleSet, type Module } from './base/lifecycle.js';
import type { Logger } from './base/log.js';
import { InferenceMetrics } from './base/metrics.js';
import { ModelInstance } from './batching/model-instance.js';
import { ModelRegistry } from './models/registry.js';
import { prepareInputs } from './batching/prepare.js';
import { pipelineOpener } from './pipelines/open-pipeline.js';
import type { ModelCaller } from './pipelines/model-caller.js';
import { ProcessingPool } from './processing/pool.js';
import { registerSequenceMetrics } from './sequences/metrics.js';
import { SequenceManager } from './sequences/sequence-manager.js';
import { registerStoreMetrics } from './store/metrics.js';
import { startDropReporter, type DropReporter } from './store/outbox-drop-reporter.js';
import { openStore, type PerchStore } from './store/store.js';
import { PerchError, toPerchError } from './base/errors.js';

export interface RuntimeDeps {
  log: Logger;
  clock?: Clock;
  /** Modules the runtime does not know, given the port at start (bin/modules.ts: the cloud agent). */
  modules?: readonly ModuleFactory[];
}

export class Runtime {
  readonly bus = new Bus();
  readonly metrics: InferenceMetrics;
  readonly store: PerchStore;
  readonly events: EventLog;
  readonly registry: ModelRegistry<ModelInstance>;
  /** Threads that decode and post-process for pipeline models; started on first use. */
  readonly processing = new ProcessingPool();
  readonly service: InferService;
  readonly sequences: SequenceManager;
  readonly ws: WsApi;
  /** Bytes held for clients, process-wide (api/client-budget.ts). */
  readonly clientBudget: ClientBudget;
  readonly jobs: JobScheduler;
  readonly installer: ModelInstaller;
  /**
   * A pipeline's call of another model: straight to that model's batcher (so the calls of
   * concurrent pipeline runs batch together), counted in its metrics like any request.
   */
  private readonly callModel: ModelCaller = async (model, inputs) => {
    const inst = await this.registry.resolveLoaded(model);
    try {
      const out = await inst.infer(prepareInputs(inst.config, inputs));
      this.metrics.countSuccess(inst.labels);
      return out;
    } catch (err) {
      this.metrics.failure.inc({ ...inst.labels, code: toPerchError(err).code });
      throw err;
    }
  };
  readonly clock: Clock;
  readonly log: Logger;
  /** The token the API requires, and where it came from (docs/security.md). */
  readonly apiToken: ResolvedApiToken;
  /** A fresh id per process start (MQTT status), so the cloud can tell reboots apart. */
  readonly bootId = randomUUID();
  private live: LiveConfig;
  private connectivity: 'online' | 'offline' | 'disabled';
  private readonly server: Server;
  /** HTTP + WebSocket on server.socketPath; null without one. */
  private readonly socketServer: Server | null;
  /** The gRPC API; null unless server.grpcPort or server.grpcSocketPath is set (docs/grpc.md). */
  readonly grpc: GrpcApi | null;
  private readonly modules: ModuleSet;
  private addr: AddressInfo | null = null;

  constructor(readonly config: Readonly<PerchConfig>, private readonly deps: RuntimeDeps) {
    const clock = (this.clock = deps.clock ?? systemClock);
    const log = (this.log = deps.log);
    this.live = liveOf(config);
    this.connectivity = config.cloud.mqttUrl ? 'offline' : 'disabled';
    // First: a server that must not start open refuses before anything else is opened.
    this.apiToken = resolveApiToken(config.server, config.dataDir, log);
    this.metrics = new InferenceMetrics(undefined, () => this.versionGauges());
    // Opening never throws for a read-only or full disk: the store opens degraded and inference
    // goes on; only a database locked by another process stops start-up.
    this.store = openStore({ dataDir: config.dataDir, config: config.store, clock, logger: log });
    registerStoreMetrics(this.metrics.registry, { outbox: this.store.outbox, cache: this.store.cache });
    this.events = new EventLog(this.store.outbox, this.bus, log);
    this.jobs = new JobScheduler(
      storeJobs({ cache: this.store.cache, outbox: this.store.outbox, checkpoint: () => this.store.checkpoint(), writable: () => this.store.writable }, config.store.jobs, log),
      { logger: log, clock },
    );
    const instanceDeps = { clock, metrics: this.metrics, openPipeline: pipelineOpener({ pool: this.processing, call: this.callModel }) };
    this.registry = new ModelRegistry({
      repository: config.models.repository, log, bus: this.bus,
      load: (name, version, path, file, overrides) => ModelInstance.load(name, version, path, file, instanceDeps, overrides),
      overrides: () => this.live.models.overrides,
    });
    this.installer = new ModelInstaller(config.models.repository, this.registry, log);
    this.bus.on('connectivity', (c) => (this.connectivity = c.state));
    const connected: Gauge = new Gauge({
      name: 'perch_cloud_connected', help: '1 while connected to the cloud broker.', registers: [this.metrics.registry],
      collect: () => connected.set(this.connectivity === 'online' ? 1 : 0),
    });
    // Refused starts are recorded as an event, at most once a minute per model.
    const lastLimitEvent = new Map<string, number>();
    this.sequences = new SequenceManager(this.registry, clock, (model, max) => {
      const now = clock.now();
      if (now - (lastLimitEvent.get(model) ?? -Infinity) < 60_000) return;
      lastLimitEvent.set(model, now);
      this.events.record('sequence.limit', { model, maxSequences: max });
    });
    registerSequenceMetrics(this.metrics.registry, () => this.sequences.stats());
    this.service = new InferService(this.registry, this.metrics, this.sequences, this.store.cache, new FailureLog(log, clock));
    const s = config.server;
    const guard = new RequestGuard({ bindHost: s.host, allowedHosts: s.allowedHosts, allowedOrigins: s.allowedOrigins });
    const budget = (this.clientBudget = new ClientBudget(s.maxClientBytes));
    registerClientMetrics(this.metrics.registry, budget);
    const scope = (tied: boolean) => ({ maxSequences: s.maxSequencesPerConnection, sequencesEndWithConnection: tied });
    const httpContext = {
      registry: this.registry, service: this.service, metrics: this.metrics.registry, maxRequestBytes: s.maxRequestBytes,
      budget, scopeOf: httpScopes(scope(s.sequencesEndWithConnection.http)),
    };
    const access = { apiToken: this.apiToken.token, guard };
    const slow = { slowReaderTimeoutMs: s.slowReaderTimeoutMs, clock };
    this.server = createHttpServer(httpContext, access, slow, log);
    this.socketServer = s.socketPath !== null ? createHttpServer(httpContext, access, slow, log) : null;
    this.grpc = s.grpcPort !== null || s.grpcSocketPath !== null
      ? new GrpcApi({
        registry: this.registry, service: this.service, apiToken: this.apiToken.token, budget, maxRequestBytes: s.maxRequestBytes,
        maxInflightPerStream: s.maxInflightPerConnection, maxBufferedBytesPerStream: s.maxBufferedBytesPerConnection,
        scope: scope(s.sequencesEndWithConnection.grpc), log,
      })
      : null;
    this.ws = new WsApi({
      service: this.service,
      log,
      apiToken: this.apiToken.token,
      guard,
      maxFrameBytes: s.maxFrameBytes,
      maxInflightPerConnection: s.maxInflightPerConnection,
      maxBufferedBytesPerConnection: s.maxBufferedBytesPerConnection,
      slowReaderTimeoutMs: s.slowReaderTimeoutMs,
      budget,
      scope: scope(s.sequencesEndWithConnection.ws),
      clock,
      status: () => this.status(),
      subscribe: (topic, push) => {
        if (topic === 'models') return this.bus.on('model', push);
        if (topic === 'connectivity') return this.bus.on('connectivity', push);
        return this.bus.on('event', push);
      },
      emit: (type, payload) => this.events.emit(type, payload),
    });
    this.ws.attach(this.server);
    if (this.socketServer) this.ws.attach(this.socketServer);
    this.modules = new ModuleSet(log);
  }

  async start(): Promise<AddressInfo> {
    const { log } = this.deps;
    let dropReporter: DropReporter | null = null;
    let offModelEvents: () => void = () => undefined;
    const store: Module = {
      name: 'store',
      start: async () => {
        dropReporter = startDropReporter(this.store.outbox, { clock: this.clock, logger: log });
        // Live config applied before a reboot still holds (before models load: overrides).
        const saved = this.store.state.get(STATE_KEYS.liveConfig);
        if (saved !== undefined) {
          const r = this.applyLiveConfig(saved, false);
          if (!r.ok) log.warn({ err: r.error.message }, 'saved live config no longer valid; using the config file');
        }
        for (const incident of this.store.incidents) this.events.record(`store.${incident.kind}`, incident);
        offModelEvents = this.bus.on('model', (e) => {
          this.events.record(`model.${e.state}`, e);
          // An unloaded version's cache entries can never be hit again: free their space.
          if (e.state === 'unloaded' && e.version !== null) {
            try {
              this.store.cache.deleteModel(e.name, e.version);
            } catch (err) {
              log.warn({ err, model: e.name }, 'could not delete cache entries of an unloaded version');
            }
          }
        });
      },
      stop: async () => {
        offModelEvents();
        await dropReporter?.stop();
        await this.store.close();
      },
    };
    const models: Module = {
      name: 'models',
      start: () => this.registry.loadAll(),
      stop: async () => {
        // Live sequences pin their versions: free them so every session can be released.
        this.sequences.close();
        await this.registry.close();
        await this.processing.close();
      },
    };
    const jobs: Module = { name: 'jobs', start: async () => this.jobs.start(), stop: () => this.jobs.stop() };
    const api: Module = {
      name: 'api',
      start: async () => {
        const s = this.config.server;
        this.addr = await listen(this.server, s.host, s.port);
        try {
          if (this.socketServer && s.socketPath !== null) await listenOnSocket(this.socketServer, s.socketPath, 'server.socketPath', parseSocketMode(s.socketMode));
          await this.grpc?.start({ host: s.host, port: s.grpcPort, socketPath: s.grpcSocketPath, socketMode: parseSocketMode(s.socketMode) });
        } catch (err) {
          // The module set does not stop a module whose start failed: close what this one opened.
          this.server.close();
          this.socketServer?.close();
          throw err;
        }
        log.info({ host: this.addr.address, port: this.addr.port, socketPath: s.socketPath ?? undefined, grpcPort: this.grpc?.port ?? undefined, grpcSocketPath: s.grpcSocketPath ?? undefined, apiToken: this.apiToken.source, tokenFile: this.apiToken.file ?? undefined, models: this.registry.status().map((m) => m.name), store: this.store.file, storeWritable: this.store.writable }, 'perch is serving');
      },
      stop: async () => {
        // Stop accepting, let in-flight requests answer, then close idle keep-alive sockets.
        this.service.stopAccepting();
        const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
        const socketClosed = new Promise<void>((resolve) => (this.socketServer ? this.socketServer.close(() => resolve()) : resolve()));
        const grpcStopped = this.grpc?.stop(this.config.server.shutdownTimeoutMs);
        await this.ws.close();
        this.server.closeIdleConnections();
        this.socketServer?.closeIdleConnections();
        await Promise.all([closed, socketClosed, grpcStopped]);
        if (this.config.server.socketPath !== null) removeSocketFile(this.config.server.socketPath);
      },
    };
    const extra: Module[] = [];
    const factories = this.deps.modules ?? [];
    if (factories.length) {
      // Built only when a module wants it: the port creates the staging folder.
      const port = this.port();
      for (const make of factories) extra.push(await make(port));
    }
    await this.modules.start([store, models, jobs, ...extra, api]);
    return this.address;
  }

  get address(): AddressInfo {
    if (!this.addr) throw new PerchError('PERCH_ERR_INTERNAL', 'runtime.address read before start() resolved');
    return this.addr;
  }

  get liveConfig(): LiveConfig {
    return this.live;
  }

  /**
   * Applies a live config document whole or not at all (docs/protocol.md section 5). Persisted, and
   * recorded as an event, so the cloud and a reboot both see it.
   */
  applyLiveConfig(partial: unknown, record = true): LiveConfigResult {
    const current = { ...this.config, log: this.live.log, models: { ...this.config.models, overrides: this.live.models.overrides }, cloud: { ...this.config.cloud, upload: this.live.cloud.upload } };
    const r = validateLive(current, partial);
    if (!r.ok) {
      if (record) this.events.record('config.rejected', r.error);
      return r;
    }
    // The fleet tool re-sends the whole config with every desired document: a document that
    // leaves the settings as they are is valid, but nothing is applied or recorded for it.
    if (isDeepStrictEqual(r.effective, this.live)) return r;
    this.live = r.effective;
    this.log.level = r.effective.log.level;
    this.registry.applyOverrides(r.effective.models.overrides);
    try {
      this.store.state.set(STATE_KEYS.liveConfig, r.effective);
    } catch (err) {
      this.log.warn({ err }, 'live config applied but not persisted (store read-only or full)');
    }
    if (record) this.events.record('config.applied', r.effective);
    return r;
  }

  async stop(): Promise<void> {
    await this.modules.stop();
  }

  /** The port a module started with the runtime is given (port/runtime-port.ts). */
  private port(): RuntimePort {
    return createRuntimePort({
      config: this.config, bootId: this.bootId, clock: this.clock, log: this.log, bus: this.bus,
      store: this.store, installer: this.installer, service: this.service,
      liveConfig: { apply: (partial) => this.applyLiveConfig(partial), current: () => this.live },
    });
  }

  /** Every known version for perch_queue_depth and perch_model_ready: failed ones too (ready 0). */
  private versionGauges(): Array<{ model: string; version: string; depth: number; ready: boolean }> {
    return this.registry.status().flatMap((m) =>
      m.versions.map((v) => {
        const depth = v.state === 'ready' ? this.registry.resolve(m.name, v.version).batcher.depth : 0;
        return { model: m.name, version: String(v.version), depth, ready: v.state === 'ready' };
      }),
    );
  }

  /** The WebSocket `status` answer (docs/protocol.md section 4). */
  status(): Record<string, unknown> {
    const models = this.registry.status().flatMap<{ name: string; version: number | null; ready: boolean; loadsOnFirstUse?: true }>((m) =>
      m.versions.length
        ? m.versions.map((v) => ({ name: m.name, version: v.version, ready: v.state === 'ready' }))
        // A model that loads on first use is available, as /v2/health/ready counts it.
        : [m.loadsOnFirstUse ? { name: m.name, version: null, ready: true, loadsOnFirstUse: true } : { name: m.name, version: null, ready: false }],
    );
    const queue: Record<string, number> = {};
    for (const i of this.registry.instances()) queue[i.name] = (queue[i.name] ?? 0) + i.batcher.depth;
    const { count, bytes, oldestAgeMs, sent } = this.store.outbox.stats();
    const sequences = Object.fromEntries(this.sequences.stats().map((s) => [s.model, s.active]));
    // count = unsent + awaitingAck (docs/api.md `status`).
    const outbox = { count, bytes, oldestAgeMs, unsent: count - sent, awaitingAck: sent };
    return { models, queue, sequences, outbox, connectivity: this.connectivity };
  }
}
