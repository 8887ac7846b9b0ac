// The runtime config: one strict schema with every default inside it (docs/design.md house style 4).
// docs/config.md documents each key; test/config/docs.test.ts fails when the two disagree.
import { hostname } from 'node:os';
import { z } from 'zod';
import { storeConfigSchema } from '../store/config.js';
import { modelOverridesSchema } from '../models/model-config.js';
import { timerMs } from '../base/timer-ms.js';
import { labelsSchema } from './labels.js';
import { shippedModelsDir } from './paths.js';

const MiB = 1024 * 1024;

/** Device ids end up in MQTT topics: no '/', '+', '#' or spaces. */
export const deviceIdSchema = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$/, 'letters, digits and _ . : - only (1-128 characters)');

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

/** `https://app.example:8443` exactly as a browser sends it in `Origin`. */
function isOrigin(value: string): boolean {
  try {
    return new URL(value).origin === value;
  } catch {
    return false;
  }
}

function defaultDeviceId(): string {
  const h = hostname().replace(/[^A-Za-z0-9_.:-]/g, '-');
  return deviceIdSchema.safeParse(h).success ? h : 'perch-device';
}

export const configSchema = z.strictObject({
  device: z
    .strictObject({
      id: deviceIdSchema.default(defaultDeviceId),
      /** Reported with the device's status and reported state; `perch fleet --select` targets by them (labels.ts). */
      labels: labelsSchema.default({}),
    })
    .prefault({}),
  server: z
    .strictObject({
      host: z.string().min(1).default('127.0.0.1'),
      port: z.number().int().min(0).max(65535).default(8080),
      /** gRPC (OIP, inference.GRPCInferenceService) on server.host; null = off (the default). */
      grpcPort: z.number().int().min(0).max(65535).nullable().default(null),
      /** HTTP and WebSocket also on this Unix socket; null = none. */
      socketPath: z.string().min(1).nullable().default(null),
      /** gRPC also on this Unix socket; null = none. */
      grpcSocketPath: z.string().min(1).nullable().default(null),
      /** File mode of the socket files, octal as chmod takes it. */
      socketMode: z.string().regex(/^0?[0-7]{3}$/, 'an octal file mode such as "0660"').default('0660'),
      apiToken: z.string().min(8, 'use at least 8 characters').nullable().default(null),
      /** Names (besides IP addresses, localhost and server.host) the device answers to: DNS rebinding guard. */
      allowedHosts: z.array(z.string().regex(/^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?\.?$/, 'a host name without port')).default([]),
      /** Web origins (besides the API's own) whose pages may change state or open a WebSocket. */
      allowedOrigins: z.array(z.string().refine(isOrigin, 'an origin: scheme://host[:port], lower case, no path')).default([]),
      maxRequestBytes: z.number().int().min(1024).default(32 * MiB),
      maxFrameBytes: z.number().int().min(1024).default(32 * MiB),
      /**
       * Requests one connection may have unanswered before it is not read (docs/reliability.md): what
       * a client has in flight when it stops reading is answered all the same, and Perch holds those
       * answers. 256 let 300 never-reading clients fill the client budget with them.
       */
      maxInflightPerConnection: z.number().int().min(1).default(16),
      maxBufferedBytesPerConnection: z.number().int().min(64 * 1024).default(8 * MiB),
      /** All bytes held for all clients together: bodies, frames, queued requests, unsent answers. */
      maxClientBytes: z.number().int().min(MiB).default(128 * MiB),
      /**
       * A loop turn longer than this (while the loop is busy with its own work) stops Perch reading
       * from connections that bring inference work, so health and metrics keep answering.
       */
      maxEventLoopDelayMs: timerMs(5).default(30),
      /** A client that leaves its answers unread this long is cut off. */
      slowReaderTimeoutMs: timerMs(100).default(10_000),
      /** SSE (/v1/events): a comment line this often, so proxies and clients see the stream alive. */
      eventStreamHeartbeatMs: timerMs(10).default(15_000),
      maxSequencesPerConnection: z.number().int().min(1).default(256),
      /** End a connection's sequences when it closes (else they live until they idle out). */
      sequencesEndWithConnection: z
        .strictObject({
          ws: z.boolean().default(true),
          http: z.boolean().default(false),
          grpc: z.boolean().default(true),
        })
        .prefault({}),
      shutdownTimeoutMs: timerMs(0).default(15000),
      /**
       * The control listener (docs/reliability.md): health, readiness, metrics and status on a
       * port of their own, served by a thread of their own, answering whatever the inference load.
       */
      control: z
        .strictObject({
          /** TCP port on server.host; null = off (the default), 0 = any free port. */
          port: z.number().int().min(0).max(65535).nullable().default(null),
          /** The same on a Unix socket; null = none. */
          socketPath: z.string().min(1).nullable().default(null),
          /** The main event loop not turning for this long fails liveness (and readiness). */
          maxLoopStallMs: timerMs(1000).default(10_000),
          /** How often /metrics and /v1/status there are refreshed from the main thread. */
          snapshotIntervalMs: timerMs(100).default(1000),
        })
        .prefault({}),
    })
    .prefault({}),
  models: z
    .strictObject({
      repository: z.string().min(1).default(shippedModelsDir),
      /**
       * Decoded pixels all image pipelines may hold at once (docs/models.md, "Pipelines"): about
       * one default maxPixels image (40 M pixels, 119 MB of RGB), so a big image runs alone and
       * small ones run together. An image larger than this is refused from its header.
       */
      maxPixelsInFlight: z.number().int().min(1_000_000).default(40_000_000),
      /** Images that may wait, in order, for room in that budget; more: 429 PERCH_ERR_QUEUE_FULL. */
      maxImagesWaiting: z.number().int().min(0).default(64),
      /**
       * Per-model settings over model.json, by model name: batching and cache. They can change
       * without restart (live config from the cloud).
       */
      overrides: z
        .record(z.string().min(1), modelOverridesSchema)
        .default({}),
    })
    .prefault({}),
  dataDir: z.string().min(1).default('data'),
  store: storeConfigSchema.prefault({}),
  cloud: z
    .strictObject({
      /** mqtt://, mqtts://, ws:// or wss:// URL of the broker; null = no cloud sync (the default). */
      mqttUrl: z.string().regex(/^(mqtts?|wss?):\/\/.+/, 'an mqtt://, mqtts://, ws:// or wss:// URL').nullable().default(null),
      topicPrefix: z.string().regex(/^[^#+]+[^/#+]$/, 'a topic prefix without wildcards or a trailing /').default('perch/v1'),
      protocolVersion: z.union([z.literal(4), z.literal(5)]).default(4),
      caFile: z.string().min(1).nullable().default(null),
      certFile: z.string().min(1).nullable().default(null),
      keyFile: z.string().min(1).nullable().default(null),
      username: z.string().nullable().default(null),
      password: z.string().nullable().default(null),
      keepaliveSeconds: z.number().int().min(5).max(3600).default(30),
      reconnect: z
        .strictObject({
          minMs: timerMs(10).default(1000),
          maxMs: timerMs(10).default(60_000),
        })
        .prefault({}),
      /** Incoming MQTT payloads larger than this are dropped and counted. */
      maxPayloadBytes: z.number().int().min(1024).default(16 * MiB),
      /** PEM file with one or more Ed25519 public keys that may sign models. */
      trustedKeysFile: z.string().min(1).nullable().default(null),
      allowUnsignedModels: z.boolean().default(false),
      upload: z
        .strictObject({
          /** Events per MQTT message; 1 = one event per message. */
          batchSize: z.number().int().min(1).max(10_000).default(100),
          /** Upload rate cap in events per second; 0 = no cap. */
          maxEventsPerSecond: z.number().min(0).default(0),
        })
        .prefault({}),
      /** When an uploaded event leaves the outbox (docs/cloud-sync.md "Delivery guarantee"). */
      delivery: z
        .strictObject({
          /**
           * 'fleet' (default): deleted once `perch fleet serve` acknowledges that it stored it
           * (P/devices/{id}/events/ack). 'broker': deleted at the broker's PUBACK, for a consumer
           * that does not send acks (a broker restart can then lose events).
           */
          ack: z.enum(['fleet', 'broker']).default('fleet'),
          /** Sent events without a fleet ack after this long are sent again (doubling while none comes, up to maxResendMs). */
          ackTimeoutMs: timerMs(100).default(10_000),
          maxResendMs: timerMs(100).default(300_000),
          /** Events sent and not yet acknowledged by the fleet, at most (the end-to-end window). */
          maxAwaitingEvents: z.number().int().min(1).max(1_000_000).default(20_000),
        })
        .prefault({}),
      download: z
        .strictObject({
          /** Chunks asked for at a time. */
          windowChunks: z.number().int().min(1).max(1024).default(16),
          /** Model download cap in bytes per second; 0 = no cap. */
          maxBytesPerSecond: z.number().min(0).default(0),
          /** A model declaring more bytes than this is refused before any chunk is asked for. */
          maxModelBytes: z.number().int().min(1).default(2 * 1024 * MiB),
          /**
           * Bytes that must stay free beside a download (for the store, logs, the OS): an update
           * needing more than the free space minus this is refused before any chunk is asked for.
           */
          diskHeadroomBytes: z.number().int().min(0).default(64 * MiB),
        })
        .prefault({}),
      rollback: z
        .strictObject({
          /** A new version whose failure ratio reaches this within the window is rolled back. */
          errorRatio: z.number().gt(0).max(1).default(0.5),
          /** Requests the window must hold before the ratio counts. */
          minRequests: z.number().int().min(1).default(20),
          windowMs: timerMs(1000).default(60_000),
        })
        .prefault({}),
      /** In-service health per model version, reported in state/reported (docs/cloud-sync.md "In-service health"). */
      health: z
        .strictObject({
          /** Error rate and p99 latency are measured over this sliding window. */
          windowMs: z.number().int().min(1000).max(3_600_000).default(60_000),
          /** state/reported goes out again this often while inference happened since the last one. */
          reportMs: z.number().int().min(100).max(3_600_000).default(10_000),
        })
        .prefault({}),
    })
    .prefault({}),
  log: z
    .strictObject({
      level: z.enum(LOG_LEVELS).default('info'),
    })
    .prefault({}),
  /** OpenTelemetry (docs/observability.md): off until an endpoint is set. */
  telemetry: z
    .strictObject({
      traces: z
        .strictObject({
          /** OTLP/HTTP traces URL, e.g. http://127.0.0.1:4318/v1/traces; null = no traces (nothing of OpenTelemetry is loaded). */
          endpoint: z.url({ protocol: /^https?$/, error: 'an http(s) URL such as http://127.0.0.1:4318/v1/traces' }).nullable().default(null),
          /** Share of new traces recorded; a request whose traceparent says sampled is always recorded. */
          sampleRatio: z.number().min(0).max(1).default(1),
          /** HTTP headers sent with every export (a collector's auth token). */
          headers: z.record(z.string().regex(/^[A-Za-z0-9-]{1,64}$/, 'a header name'), z.string().max(4096)).default({}),
        })
        .prefault({}),
    })
    .prefault({}),
});

export type PerchConfig = z.infer<typeof configSchema>;
/** What a config file may contain: every key optional. */
export type PerchConfigInput = z.input<typeof configSchema>;
