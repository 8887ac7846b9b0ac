// The composition root: builds every module from the config and wires them. No logic of its own:
// what it wires lives beside it (live-settings.ts, status.ts, gauges.ts, cache-purge.ts,
// connectivity.ts, sequence-limit-events.ts) or in the rooms below.
// Start order: store -> models -> jobs -> the modules it is given (bin/modules.ts: the cloud
// agent, which it does not know; they get runtime-port.ts) -> api; stop in reverse, so the last
// answers and the last events are written before the database closes.
import { randomUUID } from 'node:crypto';
import type { Server } from 'node:http';
import { createRuntimePort } from './port/create-port.js';
import type { ModuleFactory, RuntimePort } from './port/runtime-port.js';
import type { LiveConfig, LiveConfigResult } from './config/live-config.js';
import { ModelInstaller } from './models/installer.js';
import type { AddressInfo } from 'node:net';
import { Bus } from './base/bus.js';
import { systemClock, type Clock } from './base/clock.js';
import type { PerchConfig } from './config/schema.js';
import { ClientBudget } from './api/client-budget.js';
import { Intake, MAX_LAG_PARK_MS, MAX_REFUSAL_PARK_MS } from './api/intake.js';
import { JsonParseThread } from './api/json-thread/parse-thread.js';
import { IdleCollector, registerMemoryMetrics } from './api/idle-collector.js';
import { createHttpServer } from './api/http/server.js';
import { listen } from './api/http/listen.js';
import { httpScopes } from './api/http/scopes.js';
import { EventStreams } from './api/http/event-streams.js';
import { ConsoleFiles } from './api/http/console-files.js';
import { registerClientMetrics } from './api/client-metrics.js';
import { WsApi } from './api/ws/server.js';
import { GrpcApi } from './api/grpc/server.js';
import { controlPlaneFor, type ControlPlane } from './api/control/control-plane.js';
import { listenOnSocket, parseSocketMode, removeSocketFile } from './api/unix-socket.js';
import { guardOptionsFor, RequestGuard } from './api/request-guard.js';
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
import { PixelBudget } from './pipelines/pixel-budget.js';
import { WorkMeter } from './base/work-meter.js';
import { collectEverywhere } from './base/full-collection.js';
import { mallocTrim } from './base/malloc-trim.js';
import { registerPixelMetrics } from './pipelines/pixel-metrics.js';
import { registerSequenceMetrics } from './sequences/metrics.js';
import { SequenceManager } from './sequences/sequence-manager.js';
import { registerStoreMetrics } from './store/metrics.js';
import { startDropReporter, type DropReporter } from './store/outbox-drop-reporter.js';
import { lockDataDir, type DataDirLock } from './store/data-dir-lock.js';
import { openStore, type PerchStore } from './store/store.js';
import { PerchError, toPerchError } from './base/errors.js';
import { Tracing } from './base/tracing.js';
import { RUNTIME_VERSION } from './base/version.js';
import { purgeCacheOfUnloadedVersions } from './cache-purge.js';
import { watchConnectivity, watchIgnored, type Connectivity } from './connectivity.js';
import { registerConnectedGauge, versionGauges } from './gauges.js';
import { LiveSettings } from './live-settings.js';
import { sequenceLimitRecorder } from './sequence-limit-events.js';
import { runtimeStatus } from './status.js';
import { LiveMetrics } from './live-metrics.js';
import { topicSource } from './topics.js';
import { ModelHistory } from './model-history.js';
import { deviceStatus } from './device-status.js';

export interface RuntimeDeps {
  log: Logger;
  clock?: Clock;
  /** Modules the runtime does not know, given the port at start (bin/modules.ts: the cloud agent). */
  modules?: readonly ModuleFactory[];
}

/**
 * Past server.slowReaderTimeoutMs, how long a request body may send nothing before its 408: the
 * intake may park the connection (not read it) that long, and a body Perch does not read is not
 * the client's stall (docs/api.md "Load shedding"; as partial-frames.ts for WebSocket frames).
 */
const BODY_STALL_GRACE_MS = MAX_REFUSAL_PARK_MS + MAX_LAG_PARK_MS;

export class Runtime {
  readonly bus = new Bus();
  readonly metrics: InferenceMetrics;
  readonly store: PerchStore;
  readonly events: EventLog;
  readonly registry: ModelRegistry<ModelInstance>;
  /** Threads that decode and post-process for pipeline models; started on first use. */
  readonly processing = new ProcessingPool();
  /** Decoded pixels in flight for all image pipelines (pipelines/pixel-budget.ts). */
  readonly pixels: PixelBudget;
  /** Inference and decoding done, for the idle collector (base/work-meter.ts). */
  readonly work: WorkMeter;
  readonly service: InferService;
  /** Inference failures that are Perch's, logged at most once per interval and key. */
  private readonly failureLog: FailureLog;
  readonly sequences: SequenceManager;
  readonly ws: WsApi;
  /** Server-Sent Events at /v1/events (api/http/event-streams.ts). */
  readonly eventStreams: EventStreams;
  /** Bytes held for clients, process-wide (api/client-budget.ts). */
  readonly clientBudget: ClientBudget;
  /** Holds back inference input while the event loop lags (api/intake.ts). */
  readonly intake: Intake;
  /** Large JSON bodies are parsed here, off the main loop, one at a time. */
  private readonly jsonThread: JsonParseThread;
  /** Collects once the clients of a burst have gone (api/idle-collector.ts). */
  readonly idleCollector: IdleCollector;
  readonly jobs: JobScheduler;
  readonly installer: ModelInstaller;
  /** OpenTelemetry traces (docs/observability.md); `enabled` only once started with an endpoint. */
  readonly tracing: Tracing;
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
  private readonly live: LiveSettings;
  private readonly connectivity: () => Connectivity;
  private readonly server: Server;
  /** HTTP + WebSocket on server.socketPath; null without one. */
  private readonly socketServer: Server | null;
  /** The gRPC API; null unless server.grpcPort or server.grpcSocketPath is set (docs/grpc.md). */
  readonly grpc: GrpcApi | null;
  /** The control listener (server.control), or null when it is off. */
  readonly control: ControlPlane | null;
  private readonly modules: ModuleSet;
  private addr: AddressInfo | null = null;
  private readonly modelHistory: ModelHistory;
  private readonly startedAt: number;
  /** This process's hold on config.dataDir, given back after the store closes. */
  private readonly dataDirLock: DataDirLock;

  constructor(readonly config: Readonly<PerchConfig>, private readonly deps: RuntimeDeps) {
    const clock = (this.clock = deps.clock ?? systemClock);
    const log = (this.log = deps.log);
    this.connectivity = watchConnectivity(this.bus, Boolean(config.cloud.mqttUrl));
    const cloudIgnored = watchIgnored(this.bus);
    // First: a server that must not start open refuses before anything else is opened.
    this.apiToken = resolveApiToken(config.server, config.dataDir, log);
    this.metrics = new InferenceMetrics(undefined, () => versionGauges(this.registry));
    // Opening never throws for a read-only or full disk: the store opens degraded and inference
    // goes on; only a data directory in use by another Perch or whose lock cannot be taken though
    // it can be written (data-dir-lock.ts), a database locked by another process or one from a
    // newer Perch stops start-up. Without the lock the store never writes (opens degraded).
    const dataDirLock = (this.dataDirLock = lockDataDir(config.dataDir));
    try {
      this.store = openStore({ dataDir: config.dataDir, config: config.store, clock, logger: log, ...(dataDirLock.file === null ? { unlocked: dataDirLock.unlocked } : {}) });
    } catch (err) {
      dataDirLock.release();
      throw err;
    }
    registerStoreMetrics(this.metrics.registry, { outbox: this.store.outbox, cache: this.store.cache });
    this.tracing = new Tracing(config.telemetry.traces, { name: config.device.id, version: RUNTIME_VERSION, instanceId: this.bootId }, log);
    const tracing = this.tracing;
    this.events = new EventLog(this.store.outbox, this.bus, log, tracing);
    this.jobs = new JobScheduler(
      storeJobs({ cache: this.store.cache, outbox: this.store.outbox, checkpoint: () => this.store.checkpoint(), writable: () => this.store.writable }, config.store.jobs, log),
      { logger: log, clock },
    );
    // Inference and decoding the client budget does not see, for the idle collector (base/work-meter.ts).
    const work = (this.work = new WorkMeter());
    this.pixels = new PixelBudget(config.models.maxPixelsInFlight, config.models.maxImagesWaiting, work);
    registerPixelMetrics(this.metrics.registry, this.pixels);
    const instanceDeps = { clock, metrics: this.metrics, tracing, work, openPipeline: pipelineOpener({ pool: this.processing, call: this.callModel, pixels: this.pixels }) };
    this.registry = new ModelRegistry({
      repository: config.models.repository, log, bus: this.bus,
      load: (name, version, path, file, overrides) => ModelInstance.load(name, version, path, file, instanceDeps, overrides),
      overrides: () => this.live.current.models.overrides,
    });
    this.live = new LiveSettings({
      config, log, state: this.store.state,
      record: (type, payload) => this.events.record(type, payload),
      overridesIssues: (all) => this.registry.overridesIssues(all),
      applyOverrides: (all) => this.registry.applyOverrides(all),
    });
    this.installer = new ModelInstaller(config.models.repository, this.registry, log);
    registerConnectedGauge(this.metrics.registry, () => this.connectivity() === 'online');
    this.sequences = new SequenceManager(this.registry, clock, sequenceLimitRecorder(clock, (type, payload) => this.events.record(type, payload)));
    registerSequenceMetrics(this.metrics.registry, () => this.sequences.stats());
    this.service = new InferService(this.registry, this.metrics, this.sequences, this.store.cache, (this.failureLog = new FailureLog(log, clock)));
    const s = config.server;
    const guard = new RequestGuard(guardOptionsFor(s));
    const budget = (this.clientBudget = new ClientBudget(s.maxClientBytes));
    const intake = (this.intake = new Intake({ maxLagMs: s.maxEventLoopDelayMs }));
    this.idleCollector = new IdleCollector(budget, clock, log, collectEverywhere(), mallocTrim(), work);
    registerMemoryMetrics(this.metrics.registry, this.idleCollector);
    registerClientMetrics(this.metrics.registry, budget, intake);
    this.modelHistory = new ModelHistory(this.bus, clock);
    this.startedAt = clock.now();
    const topics = topicSource(this.bus, new LiveMetrics({
      metrics: this.metrics, queue: () => this.queueDepths(), outbox: () => this.store.outbox.stats(), connectivity: this.connectivity,
      cloudIgnored, clock, log, intervalMs: 1000,
    }));
    this.eventStreams = new EventStreams({
      subscribe: topics, readAfter: (after, limit) => this.store.outbox.readAfter(after, limit), lastSeq: () => this.store.outbox.stats().lastSeq,
      budget, clock, log, heartbeatMs: s.eventStreamHeartbeatMs, maxBufferedBytes: s.maxBufferedBytesPerConnection, slowReaderTimeoutMs: s.slowReaderTimeoutMs,
    });
    const scope = (tied: boolean) => ({ maxSequences: s.maxSequencesPerConnection, sequencesEndWithConnection: tied });
    const httpContext = {
      registry: this.registry, service: this.service, metrics: this.metrics.registry, maxRequestBytes: s.maxRequestBytes, bodyStallMs: s.slowReaderTimeoutMs + BODY_STALL_GRACE_MS,
      budget, intake, jsonThread: (this.jsonThread = new JsonParseThread()), scopeOf: httpScopes(scope(s.sequencesEndWithConnection.http)), eventStreams: this.eventStreams, consoleFiles: new ConsoleFiles(), tracing,
      status: () => deviceStatus({
        status: this.status(), config, bootId: this.bootId, uptimeMs: clock.now() - this.startedAt, modelChanges: this.modelHistory.recent(), cloudIgnored: cloudIgnored(),
      }),
    };
    const access = { apiToken: this.apiToken.token, guard };
    const slow = { slowReaderTimeoutMs: s.slowReaderTimeoutMs, clock };
    this.server = createHttpServer(httpContext, access, slow, log);
    this.socketServer = s.socketPath !== null ? createHttpServer(httpContext, access, slow, log) : null;
    this.grpc = s.grpcPort !== null || s.grpcSocketPath !== null
      ? new GrpcApi({
        registry: this.registry, service: this.service, apiToken: this.apiToken.token, budget, maxRequestBytes: s.maxRequestBytes,
        maxInflightPerStream: s.maxInflightPerConnection, maxBufferedBytesPerStream: s.maxBufferedBytesPerConnection,
        scope: scope(s.sequencesEndWithConnection.grpc), log, tracing, slowReaderTimeoutMs: s.slowReaderTimeoutMs, clock,
      })
      : null;
    this.ws = new WsApi({
      service: this.service,
      tracing,
      log,
      apiToken: this.apiToken.token,
      guard,
      maxFrameBytes: s.maxFrameBytes,
      maxInflightPerConnection: s.maxInflightPerConnection,
      maxBufferedBytesPerConnection: s.maxBufferedBytesPerConnection,
      slowReaderTimeoutMs: s.slowReaderTimeoutMs,
      budget,
      intake,
      scope: scope(s.sequencesEndWithConnection.ws),
      clock,
      status: () => this.status(),
      subscribe: topics,
      emit: (type, payload, traceparent) => this.events.emit(type, payload, traceparent),
    });
    this.ws.attach(this.server);
    if (this.socketServer) this.ws.attach(this.socketServer);
    this.control = controlPlaneFor(s, { apiToken: this.apiToken.token, ready: () => this.registry.isReady(), metrics: this.metrics.registry, status: httpContext.status, log });
    this.modules = new ModuleSet(log);
  }

  async start(): Promise<AddressInfo> {
    const { log } = this.deps;
    let dropReporter: DropReporter | null = null;
    let offModelEvents: () => void = () => undefined;
    let offCachePurge: () => void = () => undefined;
    // First up, last down: spans of everything else are exported before the process ends.
    const telemetry: Module = { name: 'telemetry', start: () => this.tracing.start(), stop: () => this.tracing.stop() };
    const store: Module = {
      name: 'store',
      start: async () => {
        dropReporter = startDropReporter(this.store.outbox, { clock: this.clock, logger: log });
        // Before models load: saved overrides apply to them.
        this.live.restoreSaved();
        for (const incident of this.store.incidents) this.events.record(`store.${incident.kind}`, incident);
        offModelEvents = this.bus.on('model', (e) => this.events.record(`model.${e.state}`, e));
        offCachePurge = purgeCacheOfUnloadedVersions(this.bus, this.store.cache, log);
      },
      stop: async () => {
        offModelEvents();
        offCachePurge();
        await dropReporter?.stop();
        await this.store.close();
        this.dataDirLock.release();
      },
    };
    const models: Module = {
      name: 'models',
      start: () => {
        // A power cut during an install, undo or rollback is finished first (install-journal.ts).
        this.installer.finishInterrupted();
        return this.registry.loadAll();
      },
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
        this.idleCollector.start();
        try {
          if (this.socketServer && s.socketPath !== null) await listenOnSocket(this.socketServer, s.socketPath, 'server.socketPath', parseSocketMode(s.socketMode));
          await this.grpc?.start({ host: s.host, port: s.grpcPort, socketPath: s.grpcSocketPath, socketMode: parseSocketMode(s.socketMode) });
          await this.control?.start();
        } catch (err) {
          // The module set does not stop a module whose start failed: close what this one opened.
          this.server.close();
          this.socketServer?.close();
          await this.grpc?.stop(0);
          throw err;
        }
        log.info({ host: this.addr.address, port: this.addr.port, socketPath: s.socketPath ?? undefined, grpcPort: this.grpc?.port ?? undefined, grpcSocketPath: s.grpcSocketPath ?? undefined, controlPort: this.control?.port ?? undefined, controlSocketPath: s.control.socketPath ?? undefined, apiToken: this.apiToken.source, tokenFile: this.apiToken.file ?? undefined, models: this.registry.status().map((m) => m.name), store: this.store.file, storeWritable: this.store.writable }, 'perch is serving');
      },
      stop: async () => {
        // Stop accepting, let in-flight requests answer, then close idle keep-alive sockets.
        this.service.stopAccepting();
        const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
        const socketClosed = new Promise<void>((resolve) => (this.socketServer ? this.socketServer.close(() => resolve()) : resolve()));
        const grpcStopped = this.grpc?.stop(this.config.server.shutdownTimeoutMs);
        // Parked connections are read again: their requests answer (or are refused) before the end.
        this.intake.close();
        this.idleCollector.stop();
        this.eventStreams.close();
        await this.ws.close();
        this.server.closeIdleConnections();
        this.socketServer?.closeIdleConnections();
        await Promise.all([closed, socketClosed, grpcStopped]);
        await this.jsonThread.close(); // after the requests it might be parsing were answered
        this.failureLog.close(); // failures held back are written with their count
        if (this.config.server.socketPath !== null) removeSocketFile(this.config.server.socketPath);
        // Last: health answers for as long as the rest winds down.
        await this.control?.stop();
      },
    };
    const extra: Module[] = [];
    const factories = this.deps.modules ?? [];
    if (factories.length) {
      // Built only when a module wants it: the port creates the staging folder.
      const port = this.port();
      for (const make of factories) extra.push(await make(port));
    }
    await this.modules.start([telemetry, store, models, jobs, ...extra, api]);
    return this.address;
  }

  get address(): AddressInfo {
    if (!this.addr) throw new PerchError('PERCH_ERR_INTERNAL', 'runtime.address read before start() resolved');
    return this.addr;
  }

  get liveConfig(): LiveConfig {
    return this.live.current;
  }

  /** Applies a live config document whole or not at all (live-settings.ts). */
  applyLiveConfig(partial: unknown, record = true): LiveConfigResult {
    return this.live.apply(partial, record);
  }

  async stop(): Promise<void> {
    await this.modules.stop();
  }

  /** The port a module started with the runtime is given (port/runtime-port.ts). */
  private port(): RuntimePort {
    return createRuntimePort({
      config: this.config, bootId: this.bootId, clock: this.clock, log: this.log, bus: this.bus,
      store: this.store, installer: this.installer, service: this.service, tracing: this.tracing,
      liveConfig: { apply: (partial) => this.live.apply(partial), current: () => this.live.current },
    });
  }

  private queueDepths(): Record<string, number> {
    const queue: Record<string, number> = {};
    for (const i of this.registry.instances()) queue[i.name] = (queue[i.name] ?? 0) + i.batcher.depth;
    return queue;
  }

  /** The WebSocket `status` answer (status.ts). */
  status(): Record<string, unknown> {
    return runtimeStatus({
      registry: this.registry, sequences: () => this.sequences.stats(), outbox: () => this.store.outbox.stats(), connectivity: this.connectivity,
    });
  }
}
