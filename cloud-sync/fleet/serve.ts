// `perch fleet serve`: the long-running side of the fleet. It wires four handlers onto one MQTT 5
// connection: chunk requests (answered from the fleet store), events (through the shared
// subscription, so several serve processes split them), status and reported state (every serve
// process records them; the writes are idempotent). Progress goes to stdout as pino JSON lines.
import { hostname } from 'node:os';
import { parseArgs } from 'node:util';
import type { MqttClient } from 'mqtt';
import { systemClock, type Clock, type TimerHandle } from '../../runtime/base/clock.js';
import { createLogger, type Logger } from '../../runtime/base/log.js';
import { DEFAULT_MAX_PAYLOAD_BYTES } from '../protocol/parse.js';
import { fleetTopics, FLEET_SHARE_GROUP, parseTopic } from '../protocol/topics.js';
import { optionalIntArg } from './args.js';
import { FleetAcker } from './acker.js';
import { answerChunkRequest, type ChunkServerContext } from './chunk-server.js';
import { ModelFiles } from './model-files.js';
import { connectBroker } from './connect.js';
import { FleetDatabase } from './database.js';
import { ingestEvents, ingestReported, ingestStatus, type IngestContext } from './ingest.js';
import { COMMON_HELP, COMMON_OPTIONS, fleetOptions, type FleetOptions } from './options.js';
import { countIgnored, newStats, type ServeStats } from './serve-stats.js';

export const SERVE_HELP = `perch fleet serve [--client-id ID] [--group NAME | --unshared] [--progress-ms MS]
                  [--max-payload BYTES] [--max-chunks N] [--log-level LEVEL]

Runs until SIGTERM/SIGINT:
  - answers chunk requests (P/devices/+/models/request, shared) from the fleet store, for the
    model versions in the desired state the fleet published for that device only;
  - stores events ($share/GROUP/P/devices/+/events) in <store>/fleet.db, deduplicated on
    (deviceId, seq), and acks each stored batch to its device (P/devices/ID/events/ack), which
    deletes the events only then; start several serve processes on the same store to split the load;
  - records each device's status and reported state in <store>/fleet.db.
Prints pino JSON lines: 'events', 'status', 'reported', 'payload ignored', 'chunks sent' (debug),
and a 'progress' line with all counters every --progress-ms (default 10000; 0 = off).

  --client-id ID      a stable MQTT client id keeps a persistent session (clean=false), so the
                      broker queues events while this serve is down; default: a random id,
                      clean session. Env PERCH_FLEET_CLIENT_ID.
  --group NAME        shared-subscription group (default ${FLEET_SHARE_GROUP})
  --unshared          subscribe to events without $share (ONE serve process only): with
                      --client-id, events sent while the broker restarts are kept (Mosquitto
                      2.0 does not persist shared subscriptions; see docs/fleet.md)
  --max-payload BYTES JSON messages above this are ignored (default ${DEFAULT_MAX_PAYLOAD_BYTES})
  --max-chunks N      at most N chunks answered per request (default 256)

${COMMON_HELP}`;

export interface ServeOptions {
  fleet: FleetOptions;
  clientId?: string;
  group?: string;
  progressMs?: number;
  maxPayloadBytes?: number;
  maxChunksPerRequest?: number;
  /**
   * Plain (not shared) events subscription: for a single serve with a persistent session. On
   * Mosquitto 2.0.11 it is the only way events published while the broker restarts and serve
   * has not reconnected yet are kept for it (shared subscriptions are not persisted).
   */
  unshared?: boolean;
  log: Logger;
  clock?: Clock;
}

export interface RunningServe {
  readonly stats: ServeStats;
  readonly client: MqttClient;
  stop(): Promise<void>;
}

export async function startServe(o: ServeOptions): Promise<RunningServe> {
  const clock = o.clock ?? systemClock;
  const { fleet, log } = o;
  const stats = newStats();
  const db = FleetDatabase.open(fleet.store);
  const maxPayloadBytes = o.maxPayloadBytes ?? DEFAULT_MAX_PAYLOAD_BYTES;
  const ingest: IngestContext = { db, log, stats, maxPayloadBytes, now: () => clock.wallNow() };
  const pendingChunks = new Set<Promise<void>>();
  // Filled in once connected; a request arriving before that cannot happen (we subscribe after).
  const ref: { chunks?: ChunkServerContext; acker?: FleetAcker } = {};

  // handleMessage is MQTT.js's hook with backpressure: the PUBACK of a QoS 1 message is sent
  // when `done` is called, so events are acknowledged only once they are committed.
  const handleMessage: MqttClient['handleMessage'] = (packet, done) => {
    const topic = packet.topic;
    const payload = Buffer.isBuffer(packet.payload) ? packet.payload : Buffer.from(packet.payload);
    try {
      const parsed = parseTopic(fleet.prefix, topic);
      if (!parsed) {
        countIgnored(stats, 'topic');
      } else if (parsed.kind === 'events') {
        // Committed by now: the device may delete them (acker.ts).
        const held = ingestEvents(ingest, parsed.deviceId, topic, payload);
        if (held.length > 0) ref.acker?.add(parsed.deviceId, held);
      } else if (parsed.kind === 'status') {
        ingestStatus(ingest, parsed.deviceId, topic, payload);
      } else if (parsed.kind === 'reported') {
        ingestReported(ingest, parsed.deviceId, topic, payload);
      } else if (parsed.kind === 'modelsRequest' && ref.chunks) {
        // Not awaited: sending a window of chunks must not hold up event ingestion.
        const p = answerChunkRequest(ref.chunks, parsed.deviceId, topic, payload).catch((err: unknown) => {
          countIgnored(stats, 'error');
          log.error({ err, topic }, 'chunk request failed');
        });
        pendingChunks.add(p);
        void p.finally(() => pendingChunks.delete(p));
      }
      done();
    } catch (err) {
      // A database failure: no PUBACK, so the broker redelivers after a reconnect. Logged loudly.
      countIgnored(stats, 'error');
      log.error({ err, topic }, 'message not stored');
      done(err as Error);
    }
  };

  let client: MqttClient;
  try {
    client = await connectBroker(fleet.broker, {
      ...(o.clientId ? { clientId: o.clientId, clean: false } : {}),
      reconnectPeriodMs: 1000,
      handleMessage,
    });
  } catch (err) {
    db.close();
    throw err;
  }
  ref.acker = new FleetAcker(client, fleet.prefix, log, stats);
  const files = new ModelFiles(fleet.store);
  ref.chunks = {
    client, files, prefix: fleet.prefix, log, stats, maxPayloadBytes, maxChunksPerRequest: o.maxChunksPerRequest ?? 256,
    desiredOf: (deviceId) => db.desired(deviceId),
  };

  const group = o.group ?? FLEET_SHARE_GROUP;
  const f = fleetTopics(fleet.prefix, group);
  const eventsFilter = o.unshared ? f.events : f.sharedEvents;
  const filters = [eventsFilter, `$share/${group}/${f.modelsRequest}`, f.status, f.reported];
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
    log.info({ ...stats }, 'progress');
    if (o.progressMs) timer = clock.setTimeout(progress, o.progressMs);
  };
  if (o.progressMs) timer = clock.setTimeout(progress, o.progressMs);
  log.info({ url: fleet.broker.url, prefix: fleet.prefix, store: fleet.store, clientId: client.options.clientId }, 'fleet serve ready');

  let stopped = false;
  return {
    stats,
    client,
    async stop() {
      if (stopped) return;
      stopped = true;
      if (timer) clock.clearTimeout(timer);
      await Promise.allSettled([...pendingChunks]);
      await files.close();
      ref.acker?.flush(); // the acks of the last batches, before the DISCONNECT
      await client.endAsync().catch(() => undefined);
      db.close();
      log.info({ ...stats }, 'fleet serve stopped');
    },
  };
}

export async function serveCommand(args: string[], out: NodeJS.WritableStream): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      ...COMMON_OPTIONS,
      'client-id': { type: 'string' }, group: { type: 'string' }, unshared: { type: 'boolean' }, 'progress-ms': { type: 'string' },
      'max-payload': { type: 'string' }, 'max-chunks': { type: 'string' }, 'log-level': { type: 'string' },
    },
  });
  if (values.help) {
    out.write(SERVE_HELP);
    return 0;
  }
  const fleet = fleetOptions(values);
  const level = (values['log-level'] ?? process.env.PERCH_LOG_LEVEL ?? 'info') as Parameters<typeof createLogger>[0];
  const log = createLogger(level).child({ component: 'fleet-serve', host: hostname() });
  const clientId = values['client-id'] ?? process.env.PERCH_FLEET_CLIENT_ID;
  const running = await startServe({
    fleet, log,
    ...(clientId ? { clientId } : {}),
    ...(values.group ? { group: values.group } : {}),
    unshared: values.unshared ?? false,
    progressMs: optionalIntArg(values['progress-ms'], 'progress-ms', 0) ?? 10_000,
    maxPayloadBytes: optionalIntArg(values['max-payload'], 'max-payload') ?? DEFAULT_MAX_PAYLOAD_BYTES,
    maxChunksPerRequest: optionalIntArg(values['max-chunks'], 'max-chunks') ?? 256,
  });
  const stop = (signal: string): void => {
    log.info({ signal }, 'stopping');
    running.stop().then(
      () => {
        log.flush();
        process.exitCode = 0;
      },
      (err: unknown) => {
        log.error({ err }, 'stop failed');
        process.exitCode = 1;
      },
    );
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
  return -1; // keeps running until a signal
}
