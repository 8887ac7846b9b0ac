// `perch fleet serve`: reads the flags, starts the daemon (serve/daemon.ts) and stops it on
// SIGTERM/SIGINT. Progress goes to stdout as pino JSON lines.
import { hostname } from 'node:os';
import { parseArgs } from 'node:util';
import { createLogger } from '../../../runtime/base/log.js';
import { DEFAULT_MAX_PAYLOAD_BYTES } from '../../protocol/parse.js';
import { FLEET_SHARE_GROUP } from '../../protocol/topics.js';
import { optionalIntArg } from '../cli/args.js';
import { COMMON_HELP, COMMON_OPTIONS, fleetOptions, UsageError } from '../cli/options.js';
import { DEFAULT_INGEST_CONNECTIONS, DEFAULT_MAX_QUEUED_CHUNKS, MAX_INGEST_CONNECTIONS, startServe } from '../serve/daemon.js';
import { DEFAULT_LEASE_MS, DEFAULT_TICK_MS } from '../serve/rollout-controller.js';

export const SERVE_HELP = `perch fleet serve [--client-id ID] [--group NAME | --unshared] [--progress-ms MS]
                  [--ingest-connections N] [--max-payload BYTES] [--max-chunks N] [--max-queued-chunks N]
                  [--http PORT [--http-host HOST]]
                  [--rollout-tick-ms MS] [--rollout-lease-ms MS] [--traces-endpoint URL] [--log-level LEVEL]

Runs until SIGTERM/SIGINT:
  - answers chunk requests (P/devices/+/models/request, shared) from the fleet store, for the
    model versions in the desired state the fleet published for that device only;
  - stores events ($share/GROUP/P/devices/+/events) in <store>/fleet.db, deduplicated on
    (deviceId, seq), and acks each stored batch to its device (P/devices/ID/events/ack), which
    deletes the events only then; start several serve processes on the same store to split the load;
  - records each device's status and reported state in <store>/fleet.db;
  - drives the rollouts started with perch fleet rollout start (one worker per rollout, state
    in the fleet store, so a restart goes on where it stood).
  - with --http PORT, serves the model store over HTTP with Range requests at
    http://HOST:PORT/models/NAME/VERSION/model.onnx, for ModelSpecs pushed with --model-url.
Prints pino JSON lines: 'events' (one per store commit that held event batches), 'payload
ignored', 'chunk request ignored' / 'chunk request cut' (at most one a second per reason and
device), and at --log-level debug 'event batch', 'status', 'reported', 'chunks queued'; and a
'progress' line with all counters every --progress-ms (default 10000; 0 = off).

  --client-id ID      a stable MQTT client id keeps a persistent session (clean=false), so the
                      broker queues events while this serve is down; default: a random id,
                      clean session. Env PERCH_FLEET_CLIENT_ID.
  --group NAME        shared-subscription group (default ${FLEET_SHARE_GROUP})
  --unshared          subscribe to events without $share (ONE serve process only): with
                      --client-id, events sent while the broker restarts are kept (Mosquitto
                      2.0 does not persist shared subscriptions; see docs/fleet.md)
  --ingest-connections N  MQTT connections that take events (default ${DEFAULT_INGEST_CONNECTIONS}, at most
                      ${MAX_INGEST_CONNECTIONS}; 1 with --unshared): the messages they hold are stored together,
                      one store commit for up to N of them (docs/fleet.md "Group commit")
  --max-payload BYTES JSON messages above this are ignored (default ${DEFAULT_MAX_PAYLOAD_BYTES})
  --max-chunks N      at most N chunks answered per request (default 256)
  --max-queued-chunks N  each device's share (default ${DEFAULT_MAX_QUEUED_CHUNKS}): at most N chunks waiting to be
                      sent to it (devices take turns, one chunk each), and at most N requests
                      ahead of the chunks sent to it; the excess is dropped and counted
                      (PERCH_ERR_FLEET_CHUNK_SHARE_EXCEEDED; docs/fleet.md)
  --rollout-tick-ms MS  how often rollouts are driven (default 1000)
  --rollout-lease-ms MS how long a rollout stays this worker's after its last tick (default
                      15000); another worker takes it over after that (a stable --client-id
                      takes it back at once after a restart)
  --http PORT         serve the model store over HTTP (0 = any free port; logged)
  --http-host HOST    address for --http (default 127.0.0.1). Every stored version is served
                      to anyone who reaches it: beyond loopback, put an authenticating proxy in front
  --traces-endpoint URL  export OpenTelemetry spans (one 'perch.fleet.ingest' per event batch, a
                      child of the device's upload span) to this OTLP/HTTP traces URL
                      (docs/observability.md). Env PERCH_FLEET_TRACES_ENDPOINT.

${COMMON_HELP}`;

export async function serveCommand(args: string[], out: NodeJS.WritableStream): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      ...COMMON_OPTIONS,
      'client-id': { type: 'string' }, group: { type: 'string' }, unshared: { type: 'boolean' }, 'progress-ms': { type: 'string' },
      'max-payload': { type: 'string' }, 'ingest-connections': { type: 'string' }, 'max-chunks': { type: 'string' }, 'max-queued-chunks': { type: 'string' }, 'log-level': { type: 'string' },
      'rollout-tick-ms': { type: 'string' }, 'rollout-lease-ms': { type: 'string' },
      http: { type: 'string' }, 'http-host': { type: 'string' }, 'traces-endpoint': { type: 'string' },
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
  const httpPort = optionalIntArg(values.http, 'http', 0);
  if (httpPort !== undefined && httpPort > 65535) throw new UsageError('--http must be a port (0-65535)');
  if (values['http-host'] !== undefined && httpPort === undefined) throw new UsageError('--http-host needs --http PORT');
  const tracesEndpoint = values['traces-endpoint'] ?? process.env.PERCH_FLEET_TRACES_ENDPOINT;
  if (tracesEndpoint !== undefined && !/^https?:\/\/[^\s]+$/.test(tracesEndpoint)) throw new UsageError('--traces-endpoint must be an http(s) URL');
  const ingestConnections = optionalIntArg(values['ingest-connections'], 'ingest-connections');
  if (ingestConnections !== undefined && ingestConnections > MAX_INGEST_CONNECTIONS) throw new UsageError(`--ingest-connections must be 1-${MAX_INGEST_CONNECTIONS}`);
  if (ingestConnections !== undefined && ingestConnections > 1 && values.unshared) throw new UsageError('--ingest-connections above 1 needs the shared subscription (not --unshared)');
  const running = await startServe({
    fleet, log,
    ...(tracesEndpoint ? { tracesEndpoint } : {}),
    ...(clientId ? { clientId } : {}),
    ...(values.group ? { group: values.group } : {}),
    unshared: values.unshared ?? false,
    ...(httpPort !== undefined ? { http: { host: values['http-host'] ?? '127.0.0.1', port: httpPort } } : {}),
    ingestConnections: ingestConnections ?? DEFAULT_INGEST_CONNECTIONS,
    progressMs: optionalIntArg(values['progress-ms'], 'progress-ms', 0) ?? 10_000,
    maxPayloadBytes: optionalIntArg(values['max-payload'], 'max-payload') ?? DEFAULT_MAX_PAYLOAD_BYTES,
    maxChunksPerRequest: optionalIntArg(values['max-chunks'], 'max-chunks') ?? 256,
    maxQueuedChunks: optionalIntArg(values['max-queued-chunks'], 'max-queued-chunks') ?? DEFAULT_MAX_QUEUED_CHUNKS,
    rolloutTickMs: optionalIntArg(values['rollout-tick-ms'], 'rollout-tick-ms', 10) ?? DEFAULT_TICK_MS,
    rolloutLeaseMs: optionalIntArg(values['rollout-lease-ms'], 'rollout-lease-ms', 100) ?? DEFAULT_LEASE_MS,
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
