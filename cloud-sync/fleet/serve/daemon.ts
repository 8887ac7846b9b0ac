// The `perch fleet serve` daemon: the long-running side of the fleet. Its main MQTT 5 connection
// takes events (through the shared subscription, so several serve processes split them), status
// and reported state (every serve process records them; the writes are idempotent); more
// connections take events only (ingest-connections.ts), so several messages are in the store at
// once and share one commit (ingest-commit.ts). Chunk requests are answered from the fleet store
// on a connection of their own (chunk-connection.ts), so they never wait behind store writes. Progress goes to the logger as pino
// JSON lines. The command's flags are read in commands/serve.ts.
import type { MqttClient } from 'mqtt';
import { systemClock, type Clock, type TimerHandle } from '../../../runtime/base/clock.js';
import type { Logger } from '../../../runtime/base/log.js';
import { DEFAULT_MAX_PAYLOAD_BYTES } from '../../protocol/parse.js';
import { fleetTopics, FLEET_SHARE_GROUP, parseTopic } from '../../protocol/topics.js';
import { connectBroker, endBroker } from '../broker/connect.js';
import type { FleetOptions } from '../cli/options.js';
import { openFleetStore } from '../store/open.js';
import { ModelFiles } from '../store/model-files.js';
import { FleetAcker } from './acker.js';
import { startHttpModels, type HttpModels } from './http-models.js';
import { startChunkConnection, type ChunkConnection } from './chunk-connection.js';
import { RolloutController } from './rollout-controller.js';
import { ingestCommit } from './ingest-commit.js';
import { startIngestConnections, type IngestConnections } from './ingest-connections.js';
import { IgnoredLog } from './ignored-log.js';
import { ingestEvents, ingestReported, ingestStatus, type IngestContext } from './ingest.js';
import { countIgnored, newStats, type ServeStats } from './stats.js';
import { Tracing } from '../../../runtime/base/tracing.js';
import { RUNTIME_VERSION } from '../../../runtime/base/version.js';

export interface ServeOptions {
  fleet: FleetOptions;
  clientId?: string;
  group?: string;
  progressMs?: number;
  maxPayloadBytes?: number;
  maxChunksPerRequest?: number;
  /** Chunks one device may have waiting to be sent (default 256; chunk-share.ts). */
  maxQueuedChunks?: number;
  /**
   * Plain (not shared) events subscription: for a single serve with a persistent session. On
   * Mosquitto 2.0.11 it is the only way events published while the broker restarts and serve
   * has not reconnected yet are kept for it (shared subscriptions are not persisted).
   */
  unshared?: boolean;
  /**
   * MQTT connections that take events (default 8, the main one included): at most one message
   * per connection is in the store at a time, so this bounds how many share a commit. 1 with --unshared.
   */
  ingestConnections?: number;
  /** Also serve the model store over HTTP with Range support (http-models.ts). */
  http?: { host: string; port: number };
  log: Logger;
  clock?: Clock;
  /** How often the rollout controller looks at the rollouts (default 1 s). */
  rolloutTickMs?: number;
  /** How long a rollout stays this worker's after its last tick (default 15 s). */
  rolloutLeaseMs?: number;
  /** OTLP/HTTP traces URL: each event batch is a `perch.fleet.ingest` span (docs/observability.md). */
  tracesEndpoint?: string;
}

export const DEFAULT_INGEST_CONNECTIONS = 8;
export const DEFAULT_MAX_QUEUED_CHUNKS = 256;
export const MAX_INGEST_CONNECTIONS = 64;

export interface RunningServe {
  readonly stats: ServeStats;
  readonly client: MqttClient;
  readonly rollouts: RolloutController;
  /** The model HTTP server, when asked for. */
  readonly http: HttpModels | undefined;
  stop(): Promise<void>;
}

export async function startServe(o: ServeOptions): Promise<RunningServe> {
  const clock = o.clock ?? systemClock;
  const { fleet, log } = o;
  const stats = newStats();
  const db = await openFleetStore(fleet);
  const maxPayloadBytes = o.maxPayloadBytes ?? DEFAULT_MAX_PAYLOAD_BYTES;
  const tracing = new Tracing({ endpoint: o.tracesEndpoint ?? null, sampleRatio: 1, headers: {} }, { name: 'perch-fleet', version: RUNTIME_VERSION }, log);
  await tracing.start();
  // One connection (--unshared, or --ingest-connections 1): nothing can join a commit.
  const commit = ingestCommit(db, () => clock.wallNow(), stats, log, !o.unshared && (o.ingestConnections ?? DEFAULT_INGEST_CONNECTIONS) > 1);
  const ingest: IngestContext = { commit, log, stats, maxPayloadBytes, tracing, ignored: new IgnoredLog(log) };
  // Filled in once connected; a message arriving before that cannot happen (we subscribe after).
  const ref: { acker?: FleetAcker } = {};

  // handleMessage is MQTT.js's hook with backpressure: the PUBACK of a QoS 1 message is sent
  // when `done` is called, so messages are acknowledged only once committed. MQTT.js hands a
  // connection's next packet over only after `done`: one message at a time per connection, in
  // order (status and reported state stay in order on the main connection).
  const handle = async (topic: string, payload: Buffer, traceparent: string | undefined): Promise<void> => {
    const parsed = parseTopic(fleet.prefix, topic);
    if (!parsed) {
      countIgnored(stats, 'topic');
    } else if (parsed.kind === 'events') {
      // Committed by now: the device may delete them (acker.ts).
      const held = await ingestEvents(ingest, parsed.deviceId, topic, payload, traceparent);
      if (held.length > 0) ref.acker?.add(parsed.deviceId, held);
    } else if (parsed.kind === 'status') {
      await ingestStatus(ingest, parsed.deviceId, topic, payload);
    } else if (parsed.kind === 'reported') {
      await ingestReported(ingest, parsed.deviceId, topic, payload);
    } else {
      // Chunk requests come on their own connection (chunk-connection.ts).
      countIgnored(stats, 'topic');
    }
  };
  let stopping = false;
  const handleMessage: MqttClient['handleMessage'] = (packet, done) => {
    // Stopping: take nothing more. No PUBACK, so the broker delivers this message again
    // (persistent session) or its device sends it again (docs/cloud-sync.md "Delivery guarantee").
    if (stopping) return;
    const topic = packet.topic;
    const payload = Buffer.isBuffer(packet.payload) ? packet.payload : Buffer.from(packet.payload);
    // MQTT v5 user property set by the device's uploader (docs/observability.md); several: the first.
    const tp = packet.properties?.userProperties?.traceparent;
    handle(topic, payload, Array.isArray(tp) ? tp[0] : tp).then(
      // done() in setImmediate, not at once: MQTT.js hands over the next buffered packet inside
      // done(), so under a flood (a store slower than the devices) messages would follow each
      // other in one chain of microtasks and timers would never run: no event acks (acker.ts
      // flushes on a 25 ms timer), no progress lines, no rollout ticks, and the devices' re-sends
      // feed the flood (found by bench/fleet-scale.ts). One turn of the event loop per message.
      () => setImmediate(done),
      (err: unknown) => {
        // A store failure: no PUBACK, so the broker redelivers after a reconnect. Logged loudly.
        countIgnored(stats, 'error');
        log.error({ err, topic }, 'message not stored');
        done(err as Error);
      },
    );
  };

  let client: MqttClient;
  try {
    client = await connectBroker(fleet.broker, {
      ...(o.clientId ? { clientId: o.clientId, clean: false } : {}),
      reconnectPeriodMs: 1000,
      handleMessage,
    });
  } catch (err) {
    await db.close();
    throw err;
  }
  ref.acker = new FleetAcker(client, fleet.prefix, log, stats);
  const files = new ModelFiles(fleet.store);
  let http: HttpModels | undefined;
  if (o.http) {
    try {
      http = await startHttpModels({ files, host: o.http.host, port: o.http.port, log, stats });
    } catch (err) {
      await endBroker(client);
      await db.close();
      throw err;
    }
  }
  const group = o.group ?? FLEET_SHARE_GROUP;
  const f = fleetTopics(fleet.prefix, group);
  let chunks: ChunkConnection;
  try {
    chunks = await startChunkConnection({
      broker: fleet.broker, ...(o.clientId ? { clientId: `${o.clientId}-chunks` } : {}), filter: `$share/${group}/${f.modelsRequest}`, prefix: fleet.prefix, log,
      maxQueuedPerDevice: o.maxQueuedChunks ?? DEFAULT_MAX_QUEUED_CHUNKS,
      context: (chunkClient) => ({
        client: chunkClient, files, prefix: fleet.prefix, log, stats, maxPayloadBytes, maxChunksPerRequest: o.maxChunksPerRequest ?? 256,
        desiredOf: (deviceId) => db.desired(deviceId),
      }),
    });
  } catch (err) {
    await http?.close();
    await endBroker(client);
    await db.close();
    throw err;
  }
  const eventsFilter = o.unshared ? f.events : f.sharedEvents;
  // A plain events subscription on several connections would deliver each batch to each.
  const extra = o.unshared ? 0 : Math.max(0, (o.ingestConnections ?? DEFAULT_INGEST_CONNECTIONS) - 1);
  let ingestConnections: IngestConnections;
  try {
    ingestConnections = await startIngestConnections({
      broker: fleet.broker, count: extra, ...(o.clientId ? { clientId: o.clientId } : {}), filter: eventsFilter, handleMessage, log,
    });
  } catch (err) {
    await chunks.stop();
    await http?.close();
    await endBroker(client);
    await db.close();
    throw err;
  }
  const filters = [eventsFilter, f.status, f.reported];
  const subscribeAll = async (): Promise<void> => {
    // The object form with `resubscribe: true`: MQTT.js otherwise skips filters it believes are
    // still subscribed (it trusts sessionPresent), and the SUBSCRIBE would never be sent.
    const request = Object.fromEntries(filters.map((filter) => [filter, { qos: 1 as const }]));
    const granted = await client.subscribeAsync({ ...request, resubscribe: true } as unknown as typeof request);
    const refused = granted.filter((g) => g.qos >= 0x80);
    if (refused.length) log.error({ refused: refused.map((g) => g.topic) }, 'subscriptions refused by the broker (ACL?)');
    else if (granted.length !== filters.length) log.warn({ granted: granted.map((g) => g.topic) }, 'not every subscription was sent');
    else log.info({ subscriptions: filters }, 'subscribed');
  };
  await subscribeAll();

  // Rollouts (docs/fleet.md "Rollouts"): driven from the fleet store, one worker per rollout.
  // They publish on the chunk connection: on the main one the PUBACKs of their publishes would
  // come in behind every queued event, status and reported message (one store commit each).
  const rollouts = new RolloutController({
    store: db, storeDir: fleet.store, client: chunks.client, prefix: fleet.prefix, log: log.child({ module: 'rollouts' }), clock,
    ...(o.clientId ? { owner: o.clientId } : {}),
    ...(o.rolloutTickMs !== undefined ? { tickMs: o.rolloutTickMs } : {}),
    ...(o.rolloutLeaseMs !== undefined ? { leaseMs: o.rolloutLeaseMs } : {}),
  });
  rollouts.start();

  client.on('offline', () => log.warn('broker connection lost; reconnecting'));
  // Subscribe again on every reconnect, even when the broker says the session is present:
  // Mosquitto 2.0.11 keeps a persistent session across its own restart but drops the session's
  // shared subscriptions ($share/...), so without this serve would silently receive no events.
  client.on('connect', () => {
    log.info('reconnected');
    subscribeAll().catch((err: unknown) => log.error({ err }, 'resubscribe failed'));
  });
  client.on('error', (err) => log.warn({ err: err.message }, 'mqtt error'));

  let timer: TimerHandle | undefined;
  const progress = (): void => {
    const share = chunks.share.state;
    log.info({ ...stats, chunksWaiting: share.waiting, devicesWaiting: share.devices }, 'progress');
    if (o.progressMs) timer = clock.setTimeout(progress, o.progressMs);
  };
  if (o.progressMs) timer = clock.setTimeout(progress, o.progressMs);
  log.info({ url: fleet.broker.url, prefix: fleet.prefix, store: fleet.store, clientId: client.options.clientId, ingestConnections: 1 + extra }, 'fleet serve ready');

  let stopped = false;
  return {
    stats,
    client,
    rollouts,
    http,
    async stop() {
      if (stopped) return;
      stopped = true;
      stopping = true;
      if (timer) clock.clearTimeout(timer);
      await rollouts.stop();
      await ingestConnections.stop();
      await chunks.stop();
      await http?.close();
      await files.close();
      ref.acker?.flush(); // the acks of the last batches, before the DISCONNECT
      await endWithin(client, END_GRACE_MS);
      await db.close();
      await tracing.stop();
      log.info({ ...stats }, 'fleet serve stopped');
    },
  };
}

/** How long stop() lets the main connection's own publishes (event acks) be acknowledged. */
const END_GRACE_MS = 2000;

/**
 * A clean end (MQTT.js waits until the broker acknowledged every publish of ours: the event
 * acks), bounded: under a flood the broker's PUBACKs queue on the same ordered connection behind
 * messages serve no longer takes, so the wait could last forever (serve on PostgreSQL was
 * SIGKILLed after 20 s in bench/fleet-scale.ts). Past the grace the connection is closed at once:
 * an ack lost that way costs a re-send, which the fleet store's dedup absorbs.
 */
async function endWithin(client: MqttClient, graceMs: number): Promise<void> {
  const waiting = (): boolean => Object.keys(client.outgoing).length > 0;
  if (waiting()) {
    // MQTT.js emits outgoingEmpty when the last of our publishes was acknowledged.
    await new Promise<void>((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        client.off('outgoingEmpty', done);
        resolve();
      };
      const timer = setTimeout(done, graceMs);
      client.once('outgoingEmpty', done);
    });
  }
  // end(false) with publishes still unacknowledged would wait for them: forced then.
  await endBroker(client, waiting());
}
