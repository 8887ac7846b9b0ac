// OpenTelemetry traces (docs/observability.md). Off by default: then nothing of OpenTelemetry is
// loaded and every traced place costs one boolean check (`tracing.enabled`). When
// `telemetry.traces.endpoint` is set, start() loads the SDK and the OTLP/HTTP exporter with a
// dynamic import and spans are exported in batches, in the background.
//
// Trace context crosses process boundaries as a W3C `traceparent` string (HTTP header, gRPC
// metadata, WebSocket message field, MQTT v5 user property, the outbox row): parsed here, never
// trusted beyond its format.
import type { Attributes, Context, Link, Span, SpanKind, Tracer } from '@opentelemetry/api';
import type { Logger } from './log.js';

export interface TracingConfig {
  /** OTLP/HTTP traces URL (`http://collector:4318/v1/traces`); null = tracing off. */
  endpoint: string | null;
  /** Share of new traces recorded (0-1); a request with a sampled parent is always recorded. */
  sampleRatio: number;
  /** Extra HTTP headers sent with every export (an auth token of the collector). */
  headers: Readonly<Record<string, string>>;
}

export interface SpanOptions {
  /** A parent: a span of this process, or a W3C traceparent from outside (bad ones are ignored). */
  parent?: Span | string | null | undefined;
  /** performance.now() ms; default now. */
  start?: number | undefined;
  attributes?: Attributes | undefined;
  /** Spans of this process, or W3C traceparents (bad ones are left out). */
  links?: readonly (Span | string)[] | undefined;
  kind?: 'server' | 'client' | 'producer' | 'consumer' | 'internal';
}

type Api = typeof import('@opentelemetry/api');

interface Provider {
  forceFlush(): Promise<void>;
  shutdown(): Promise<void>;
}

// W3C Trace Context: version-traceid-parentid-flags, lower-case hex (version ff is invalid).
const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(?:-.*)?$/;

export class Tracing {
  /** True once the SDK is loaded and exporting: the only thing the hot path reads. */
  enabled = false;
  private api: Api | null = null;
  private tracer: Tracer | null = null;
  private provider: Provider | null = null;

  constructor(
    private readonly config: TracingConfig,
    /** The resource's `service.name` (the device id) and `service.version`. */
    private readonly service: { name: string; version: string; instanceId?: string },
    private readonly log: Logger,
  ) {}

  /** Loads the SDK and starts exporting when an endpoint is configured; otherwise does nothing. */
  async start(): Promise<void> {
    const endpoint = this.config.endpoint;
    if (endpoint === null || this.enabled) return;
    const [api, sdk, resources, exporter] = await Promise.all([
      import('@opentelemetry/api'),
      import('@opentelemetry/sdk-trace'),
      import('@opentelemetry/resources'),
      import('@opentelemetry/exporter-trace-otlp-http'),
    ]);
    const provider = new sdk.TracerProvider({
      resource: resources.resourceFromAttributes({
        'service.name': this.service.name,
        'service.version': this.service.version,
        ...(this.service.instanceId ? { 'service.instance.id': this.service.instanceId } : {}),
      }),
      sampler: new sdk.ParentBasedSampler({ root: new sdk.TraceIdRatioBasedSampler(this.config.sampleRatio) }),
      // Bounded: at most 2048 spans wait for export (older ones are dropped when the collector is away).
      spanProcessors: [new sdk.BatchSpanProcessor({
        exporter: new exporter.OTLPTraceExporter({ url: endpoint, headers: { ...this.config.headers } }),
        maxQueueSize: 2048, scheduledDelayMillis: 2000,
      })],
    });
    this.api = api;
    this.provider = provider;
    this.tracer = provider.getTracer('perch', this.service.version);
    this.enabled = true;
    this.log.info({ endpoint, sampleRatio: this.config.sampleRatio }, 'traces are exported over OTLP/HTTP');
  }

  /** Exports what is buffered (tests, shutdown). */
  async flush(): Promise<void> {
    await this.provider?.forceFlush();
  }

  /** Exports what is buffered and stops; spans started later are not recorded. */
  async stop(): Promise<void> {
    const p = this.provider;
    this.enabled = false;
    this.provider = null;
    if (p) await p.shutdown().catch((err: unknown) => this.log.warn({ err: (err as Error).message }, 'trace export failed at shutdown'));
  }

  /** A new span; only call while `enabled`. */
  startSpan(name: string, o: SpanOptions = {}): Span {
    const api = this.api as Api;
    let links: Link[] | undefined;
    if (o.links) {
      links = [];
      for (const l of o.links) {
        if (typeof l !== 'string') links.push({ context: l.spanContext() });
        else {
          const c = parseTraceparent(l);
          if (c) links.push({ context: { ...c, isRemote: true } });
        }
      }
    }
    return (this.tracer as Tracer).startSpan(name, {
      kind: KINDS[o.kind ?? 'internal'] as SpanKind,
      startTime: epochMs(o.start ?? performance.now()),
      ...(o.attributes ? { attributes: o.attributes } : {}),
      ...(links ? { links } : {}),
    }, this.contextOf(api, o.parent));
  }

  /** A finished span with known start and end (a queue wait, a step measured elsewhere). */
  record(name: string, parent: Span, start: number, end: number, attributes?: Attributes, links?: readonly Span[]): Span {
    const span = this.startSpan(name, { parent, start, attributes, links });
    span.end(epochMs(end));
    return span;
  }

  /** Ends a span (at `at`, performance.now() ms; default now), as failed when given a PERCH_ERR_* code. */
  end(span: Span, code?: string, message?: string, at?: number): void {
    if (code !== undefined) {
      span.setAttribute('perch.error.code', code);
      span.setStatus({ code: 2 /* SpanStatusCode.ERROR */, message: message ?? code });
    }
    span.end(epochMs(at ?? performance.now()));
  }

  /** The W3C traceparent of a span, to carry it across a process boundary. */
  traceparent(span: Span): string {
    const c = span.spanContext();
    return `00-${c.traceId}-${c.spanId}-${(c.traceFlags & 0xff).toString(16).padStart(2, '0')}`;
  }

  private contextOf(api: Api, parent: Span | string | null | undefined): Context {
    if (!parent) return api.ROOT_CONTEXT;
    if (typeof parent !== 'string') return api.trace.setSpan(api.ROOT_CONTEXT, parent);
    const remote = parseTraceparent(parent);
    return remote ? api.trace.setSpanContext(api.ROOT_CONTEXT, { ...remote, isRemote: true }) : api.ROOT_CONTEXT;
  }
}

/**
 * performance.now() ms as epoch ms, from one origin for every span. (Handing OpenTelemetry
 * performance.now() values makes each span correct them by its own Date.now() reading, which
 * moves children outside their parents by up to a millisecond.)
 */
function epochMs(perfMs: number): number {
  return performance.timeOrigin + perfMs;
}

const KINDS = { internal: 0, server: 1, client: 2, producer: 3, consumer: 4 } as const;

/** A W3C traceparent's ids, or null when it is not one (hostile input is simply not a parent). */
export function parseTraceparent(value: unknown): { traceId: string; spanId: string; traceFlags: number } | null {
  if (typeof value !== 'string' || value.length > 512) return null;
  const m = TRACEPARENT.exec(value.trim());
  if (!m) return null;
  const [, version, traceId, spanId, flags] = m as unknown as [string, string, string, string, string];
  if (version === 'ff' || (version === '00' && value.trim().length !== 55)) return null;
  if (/^0+$/.test(traceId) || /^0+$/.test(spanId)) return null;
  return { traceId, spanId, traceFlags: parseInt(flags, 16) };
}

/** Tracing that is off: what tools and tests get when they configure none. */
export function tracingOff(log: Logger): Tracing {
  return new Tracing({ endpoint: null, sampleRatio: 1, headers: {} }, { name: 'perch', version: '0' }, log);
}
