// An OTLP/HTTP endpoint that accepts and discards what an exporter sends (the "traces on" row of
// bench/overhead.ts): a collector that costs the device nothing but the export itself. With
// `keep`, it parses and keeps the OTLP JSON bodies (bench/decompose.ts reads the spans).
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface OtlpSink {
  url: string;
  /** Export requests and bytes received so far. */
  posts: number;
  bytes: number;
  /** The parsed bodies, when started with keep. */
  bodies: unknown[];
  close(): Promise<void>;
}

export async function startOtlpSink(keep = false): Promise<OtlpSink> {
  const server = createServer();
  const sink: OtlpSink = {
    url: '',
    posts: 0,
    bytes: 0,
    bodies: [],
    close: () => {
      server.closeAllConnections();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
  server.on('request', (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => {
      sink.bytes += c.length;
      if (keep) chunks.push(c);
    });
    req.on('end', () => {
      sink.posts++;
      if (keep) sink.bodies.push(JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown);
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  sink.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/traces`;
  return sink;
}
