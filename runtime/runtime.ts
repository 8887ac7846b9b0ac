// The composition root: builds every module from the config and wires them. No logic of its own.
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Bus } from './bus.js';
import { systemClock, type Clock } from './clock.js';
import type { PerchConfig } from './config/schema.js';
import { createHttpServer, listen } from './api/http-server.js';
import { WsApi } from './api/ws-server.js';
import { InferService } from './inference/infer-service.js';
import { ModuleSet, type Module } from './lifecycle.js';
import type { Logger } from './log.js';
import { InferenceMetrics } from './metrics.js';
import { ModelRegistry } from './models/registry.js';

export interface RuntimeDeps {
  log: Logger;
  clock?: Clock;
}

export class Runtime {
  readonly bus = new Bus();
  readonly metrics: InferenceMetrics;
  readonly registry: ModelRegistry;
  readonly service: InferService;
  readonly ws: WsApi;
  private readonly server: Server;
  private readonly modules: ModuleSet;
  private addr: AddressInfo | null = null;

  constructor(readonly config: Readonly<PerchConfig>, private readonly deps: RuntimeDeps) {
    const clock = deps.clock ?? systemClock;
    const log = deps.log;
    this.metrics = new InferenceMetrics(undefined, () =>
      this.registry.instances().map((i) => ({ model: i.name, version: String(i.version), depth: i.batcher.depth, ready: true })),
    );
    this.registry = new ModelRegistry({ repository: config.models.repository, log, bus: this.bus, clock, metrics: this.metrics });
    this.service = new InferService(this.registry, this.metrics);
    const s = config.server;
    this.server = createHttpServer(
      { registry: this.registry, service: this.service, metrics: this.metrics.registry, maxRequestBytes: s.maxRequestBytes },
      { host: s.host, port: s.port, apiToken: s.apiToken },
      log,
    );
    this.ws = new WsApi({
      service: this.service,
      log,
      apiToken: s.apiToken,
      maxFrameBytes: s.maxFrameBytes,
      maxInflightPerConnection: s.maxInflightPerConnection,
      maxBufferedBytesPerConnection: s.maxBufferedBytesPerConnection,
      status: () => this.status(),
      subscribe: (topic, push) => {
        if (topic === 'models') return this.bus.on('model', push);
        if (topic === 'connectivity') return this.bus.on('connectivity', push);
        return () => undefined; // 'events': nothing publishes events until the store is wired
      },
      emit: null,
    });
    this.ws.attach(this.server);
    this.modules = new ModuleSet(log);
  }

  /** Loads the models, then opens the port. */
  async start(): Promise<AddressInfo> {
    const models: Module = {
      name: 'models',
      start: () => this.registry.loadAll(),
      stop: () => this.registry.close(),
    };
    const api: Module = {
      name: 'api',
      start: async () => {
        this.addr = await listen(this.server, this.config.server.host, this.config.server.port);
        this.deps.log.info({ host: this.addr.address, port: this.addr.port, models: this.registry.status().map((m) => m.name) }, 'perch is serving');
      },
      stop: async () => {
        // Stop accepting, let in-flight requests answer, then close idle keep-alive sockets.
        this.service.stopAccepting();
        const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
        await this.ws.close();
        this.server.closeIdleConnections();
        await closed;
      },
    };
    await this.modules.start([models, api]);
    return this.address;
  }

  get address(): AddressInfo {
    if (!this.addr) throw new Error('runtime not started');
    return this.addr;
  }

  async stop(): Promise<void> {
    await this.modules.stop();
  }

  status(): Record<string, unknown> {
    const models = this.registry.status().flatMap<{ name: string; version: number | null; ready: boolean }>((m) =>
      m.versions.length
        ? m.versions.map((v) => ({ name: m.name, version: v.version, ready: v.state === 'ready' }))
        : [{ name: m.name, version: null, ready: false }],
    );
    const queue: Record<string, number> = {};
    for (const i of this.registry.instances()) queue[i.name] = (queue[i.name] ?? 0) + i.batcher.depth;
    return { models, queue, connectivity: 'disabled' };
  }
}
