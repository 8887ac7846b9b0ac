// A real OTLP/HTTP traces receiver for tests: a node http server on a loopback port that takes
// what an OpenTelemetry OTLP/HTTP exporter POSTs (OTLP JSON, gzip or not) and keeps every span,
// flattened with its resource's service name. Answers as a collector does (200 `{}`).
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gunzipSync } from 'node:zlib';

export interface ReceivedSpan {
  service: string;
  traceId: string;
  spanId: string;
  /** '' for a root span. */
  parentSpanId: string;
  name: string;
  kind: number;
  startNs: bigint;
  endNs: bigint;
  attributes: Record<string, unknown>;
  links: Array<{ traceId: string; spanId: string }>;
  status: { code?: number; message?: string };
}

interface AnyValue { stringValue?: string; intValue?: string | number; doubleValue?: number; boolValue?: boolean }
interface KeyValue { key: string; value: AnyValue }

/** OTLP JSON ids are hex; accept base64 too (the protobuf-JSON mapping of bytes). */
function hexId(id: unknown): string {
  if (typeof id !== 'string' || id === '') return '';
  if (/^[0-9a-f]+$/i.test(id) && (id.length === 32 || id.length === 16)) return id.toLowerCase();
  return Buffer.from(id, 'base64').toString('hex');
}

function value(v: AnyValue): unknown {
  if (v.stringValue !== undefined) return v.stringValue;
  if (v.intValue !== undefined) return Number(v.intValue);
  if (v.doubleValue !== undefined) return v.doubleValue;
  if (v.boolValue !== undefined) return v.boolValue;
  return v;
}

function attrs(list: KeyValue[] | undefined): Record<string, unknown> {
  return Object.fromEntries((list ?? []).map((kv) => [kv.key, value(kv.value)]));
}

export class OtlpReceiver {
  readonly spans: ReceivedSpan[] = [];
  /** Export requests received (each one POST). */
  posts = 0;

  private constructor(private readonly server: Server) {}

  static async start(): Promise<OtlpReceiver> {
    const server = createServer();
    const r = new OtlpReceiver(server);
    server.on('request', (req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        try {
          if (req.method !== 'POST' || req.url !== '/v1/traces') throw new Error(`unexpected ${req.method} ${req.url}`);
          let body = Buffer.concat(chunks);
          if (req.headers['content-encoding'] === 'gzip') body = gunzipSync(body);
          r.take(JSON.parse(body.toString('utf8')) as { resourceSpans?: unknown[] });
          r.posts++;
          res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
        } catch (err) {
          res.writeHead(400, { 'content-type': 'text/plain' }).end((err as Error).message);
        }
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return r;
  }

  get url(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/v1/traces`;
  }

  named(name: string): ReceivedSpan[] {
    return this.spans.filter((s) => s.name === name);
  }

  childrenOf(span: ReceivedSpan): ReceivedSpan[] {
    return this.spans.filter((s) => s.traceId === span.traceId && s.parentSpanId === span.spanId);
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  private take(doc: { resourceSpans?: unknown[] }): void {
    for (const rs of (doc.resourceSpans ?? []) as Array<{ resource?: { attributes?: KeyValue[] }; scopeSpans?: Array<{ spans?: unknown[] }> }>) {
      const service = String(attrs(rs.resource?.attributes)['service.name'] ?? '');
      for (const ss of rs.scopeSpans ?? []) {
        for (const raw of (ss.spans ?? []) as Array<Record<string, unknown>>) {
          this.spans.push({
            service,
            traceId: hexId(raw.traceId),
            spanId: hexId(raw.spanId),
            parentSpanId: hexId(raw.parentSpanId),
            name: String(raw.name),
            kind: Number(raw.kind ?? 0),
            startNs: BigInt(String(raw.startTimeUnixNano ?? 0)),
            endNs: BigInt(String(raw.endTimeUnixNano ?? 0)),
            attributes: attrs(raw.attributes as KeyValue[] | undefined),
            links: ((raw.links ?? []) as Array<Record<string, unknown>>).map((l) => ({ traceId: hexId(l.traceId), spanId: hexId(l.spanId) })),
            status: (raw.status ?? {}) as { code?: number; message?: string },
          });
        }
      }
    }
  }
}
