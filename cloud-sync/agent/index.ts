// The cloud-sync agent (device side of docs/protocol.md section 5) as one runtime Module: a thin
// composition root wiring the connection, the inbound router, the uploader, desired/reported
// state, model updates, the rollback circuit breaker and commands. Everything it needs from the
// runtime comes through the RuntimePort (runtime/port/runtime-port.ts); started only when cloud.mqttUrl is set.
import type { Module } from '../../runtime/base/lifecycle.js';
import { LogLimiter } from '../../runtime/base/log-limit.js';
import { CircuitBreaker } from './circuit-breaker.js';
import { createCommands } from './commands.js';
import { Connection } from './connection.js';
import { DesiredStateApplier } from './desired-state.js';
import { HealthMonitor } from './health.js';
import { createInbound } from './inbound.js';
import { StatusBook } from './model-update/status-book.js';
import { ModelUpdater } from './model-update/updater.js';
import { SPACE_WAIT_DEFAULTS, type SpaceWaitOptions } from './model-update/space-wait.js';
import { UPDATE_STEPS } from './model-update/steps.js';
import { ReportedState } from './reported-state.js';
import { ReportRequests } from './report-requests.js';
import type { RuntimePort } from '../../runtime/port/runtime-port.js';
import { emptyStats, snapshot, type AgentStats } from './stats.js';
import { Uploader } from './uploader.js';

export type { AgentStats } from './stats.js';
export type { RuntimePort } from '../../runtime/port/runtime-port.js';

export interface AgentOptions {
  /** Jitter source for reconnect delays (tests pin it). */
  random?: () => number;
  connectTimeoutMs?: number;
  /** Outstanding chunks are asked for again after this long without a chunk (default 10 s). */
  chunkTimeoutMs?: number;
  /** Re-request rounds without progress before a download fails (default 5). */
  chunkRetries?: number;
  /** Event messages published and not yet PUBACKed, at most (default 64). */
  maxInflightBatches?: number;
  /** How often a changed backlog is reported again in state/reported (default 30 s). */
  backlogReportMs?: number;
  /** Looks at the disk after a NO_SPACE update failure: first wait, doubling up to max (default 10 s to 5 min). */
  spaceWait?: SpaceWaitOptions;
}

export interface CloudAgent extends Module {
  /** Counters: ignored payloads by reason, events and chunks moved, updates, rollbacks. */
  stats(): AgentStats;
  /** True while connected to the broker. */
  readonly online: boolean;
  /** The state/reported document as it would be published now. */
  reported(): Record<string, unknown>;
}

export function createCloudAgent(port: RuntimePort, opts: AgentOptions = {}): CloudAgent {
  const stats = emptyStats();
  const { cloud } = port;
  // Lines of refused messages and failed commands: a few per interval however many come.
  const limiter = new LogLimiter(port.clock);
  const conn = new Connection(port, stats, { random: opts.random, connectTimeoutMs: opts.connectTimeoutMs });
  // The reported publisher needs the book and the desired view; both need to tell it of changes.
  let reported: ReportedState | null = null;
  const changed = (): void => reported?.schedule();
  const book = new StatusBook(port.state, changed, port.log);
  let breaker: CircuitBreaker | null = null;
  const updater = new ModelUpdater(
    port,
    conn,
    stats,
    book,
    { installed: (name, version) => breaker?.watch(name, version), changed },
    { chunkTimeoutMs: opts.chunkTimeoutMs ?? 10_000, maxRetries: opts.chunkRetries ?? 5 },
    UPDATE_STEPS,
    opts.spaceWait ?? SPACE_WAIT_DEFAULTS,
  );
  breaker = new CircuitBreaker(port, (trip) => {
    const reason = `${trip.failures} of ${trip.requests} requests failed within ${trip.windowMs} ms (ratio ${trip.ratio.toFixed(2)})`;
    port.log.warn({ model: trip.name, version: trip.version, code: 'PERCH_ERR_MODEL_ROLLED_BACK' }, `new model version failing in service: ${reason}`);
    updater
      .rollback(trip.name, reason, 'circuit-breaker', { version: trip.version, requests: trip.requests, failures: trip.failures })
      .catch((err: unknown) => port.log.error({ err, model: trip.name }, 'rollback after failures in service did not happen'));
  });
  const desired = new DesiredStateApplier(port, stats, updater, changed, limiter);
  const health = new HealthMonitor(port, changed);
  reported = new ReportedState(port, conn, book, desired, (name) => updater.progress(name), opts.backlogReportMs, () => health.build());
  const rep = reported;
  const reports = new ReportRequests(() => rep.publish(), port.clock);
  const commands = createCommands(port, stats, updater, reports, limiter);
  const uploader = new Uploader(port, conn, stats, { maxInflightBatches: opts.maxInflightBatches });
  let offOnline: () => void = () => undefined;
  let offModels: () => void = () => undefined;
  let started = false;

  return {
    name: 'cloud',
    get online() {
      return conn.online;
    },
    stats: () => snapshot(stats),
    reported: () => rep.build() as unknown as Record<string, unknown>,

    async start(): Promise<void> {
      if (started) return;
      started = true;
      conn.onMessage(
        createInbound(
          { topicPrefix: cloud.topicPrefix, deviceId: port.device.id, maxPayloadBytes: cloud.maxPayloadBytes, log: port.log, limiter, stats },
          {
            desired: (doc) => desired.receive(doc),
            desiredRefused: (note) => desired.refuse(note),
            command: (cmd) => commands(cmd),
            chunk: (name, version, index, payload) => updater.receiveChunk(name, version, index, payload),
            eventsAck: (ack) => uploader.onFleetAck(ack),
          },
        ),
      );
      // Added before connecting; every connect subscribes them again.
      void conn.subscribe(conn.topics.desired);
      void conn.subscribe(conn.topics.commands);
      // Chunks of every download, for good: a subscription per download cost a SUBACK round
      // trip before its first request. Chunks nobody asked for are counted and ignored (inbound.ts).
      void conn.subscribe(conn.topics.allChunks);
      // The fleet's acks of stored events; QoS 1 in the persistent session, so the acks sent
      // while the device was away arrive after it reconnects (docs/cloud-sync.md).
      if (uploader.fleetAcks) void conn.subscribe(conn.topics.eventsAck);
      offOnline = conn.onOnline(() => rep.schedule());
      // A model loaded or unloaded on the device itself (HTTP /v2/repository/..., docs/models.md
      // "Managed on the LAN") changes what is served: state/reported says so at once.
      offModels = port.models.onChange(() => rep.schedule());
      rep.start();
      breaker.start();
      health.start();
      // Before connecting: downloads in progress are there when the session's chunks arrive.
      desired.resume();
      uploader.start();
      // Not awaited: the runtime serves offline; connecting is the connection's own business.
      conn.start();
    },

    async stop(): Promise<void> {
      if (!started) return;
      started = false;
      offOnline();
      offModels();
      rep.stop();
      reports.stop();
      desired.stop();
      await updater.stop();
      breaker.stop();
      health.stop();
      await uploader.stop();
      await conn.stop();
      limiter.close(); // what it held back is written now, with its count
    },
  };
}
