// `perch fleet serve --http PORT`: the fleet's model store over HTTP with Range support
// (docs/cloud-sync.md "Model bytes over HTTP"), so devices whose ModelSpec carries a `url` fetch
// bulk bytes here and the broker carries only control. GET and HEAD of
// `/models/{name}/{version}/model.onnx`, single byte ranges (`bytes=a-b`, `a-`, `-n`); anything
// else is a JSON PERCH_ERR_* answer. Every stored version is served to whoever reaches the port:
// it listens on loopback unless told otherwise (put an authenticating proxy in front beyond it).
// Bounded: at most maxConnections sockets, a body is streamed READ_BYTES at a time and the next
// read waits for the socket to drain, idle sockets are closed.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { PerchError } from '../../../runtime/base/errors.js';
import type { Logger } from '../../../runtime/base/log.js';
import { NAME_PATTERN } from '../../protocol/schemas.js';
import type { ModelFiles, OpenModel } from '../store/model-files.js';
import type { ServeStats } from './stats.js';

const READ_BYTES = 64 * 1024;
const IDLE_MS = 30_000;
const PATH = /^\/models\/([^/]+)\/(\d{1,15})\/model\.onnx$/;

export interface HttpModelsOptions {
  files: ModelFiles;
  host: string;
  port: number;
  log: Logger;
  stats: ServeStats;
  maxConnections?: number;
}

export interface HttpModels {
  readonly server: Server;
  /** The bound port (the one asked for, or the one the OS chose for 0). */
  readonly port: number;
  /** `http://host:port/models/NAME/VERSION/model.onnx`: what a ModelSpec `url` names. */
  urlOf(name: string, version: number): string;
  close(): Promise<void>;
}

export async function startHttpModels(o: HttpModelsOptions): Promise<HttpModels> {
  const server = createServer({ requestTimeout: 60_000, headersTimeout: 10_000, keepAliveTimeout: 5_000 }, (req, res) => {
    handle(o, req, res).catch((err: unknown) => {
      o.log.error({ err, url: req.url }, 'model request failed');
      if (!res.headersSent) answerError(res, 500, 'PERCH_ERR_INTERNAL', 'model request failed');
      else res.destroy();
    });
  });
  server.maxConnections = o.maxConnections ?? 256;
  server.on('connection', (socket) => socket.setTimeout(IDLE_MS, () => socket.destroy()));
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(new PerchError(err.code === 'EADDRINUSE' ? 'PERCH_ERR_PORT_IN_USE' : 'PERCH_ERR_LISTEN_FAILED', `fleet model HTTP on ${o.host}:${o.port}: ${err.message}`, { cause: err })),
    );
    server.listen(o.port, o.host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  const host = o.host.includes(':') ? `[${o.host}]` : o.host;
  o.log.info({ host: o.host, port }, 'serving the model store over HTTP');
  return {
    server,
    port,
    urlOf: (name, version) => `http://${host}:${port}/models/${encodeURIComponent(name)}/${version}/model.onnx`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

async function handle(o: HttpModelsOptions, req: IncomingMessage, res: ServerResponse): Promise<void> {
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.setHeader('allow', 'GET, HEAD');
    return answerError(res, 405, 'PERCH_ERR_METHOD_NOT_ALLOWED', `${req.method ?? ''} is not allowed here`);
  }
  const m = PATH.exec((req.url ?? '').split('?')[0] ?? '');
  const name = m ? safeDecode(m[1] ?? '') : null;
  const version = m ? Number(m[2]) : 0;
  if (!m || name === null || !NAME_PATTERN.test(name) || !Number.isSafeInteger(version) || version < 1) {
    return answerError(res, 404, 'PERCH_ERR_ROUTE_NOT_FOUND', 'not a model path (/models/NAME/VERSION/model.onnx)');
  }
  let model: OpenModel;
  try {
    model = await o.files.get(name, version);
  } catch (err) {
    const e = err instanceof PerchError ? err : new PerchError('PERCH_ERR_FLEET_MODEL_MISSING', String(err));
    return answerError(res, 404, e.code, e.message);
  }
  try {
    const size = model.spec.size;
    const range = parseRange(req.headers.range, size);
    res.setHeader('accept-ranges', 'bytes');
    res.setHeader('etag', `"${model.spec.sha256}"`);
    res.setHeader('content-type', 'application/octet-stream');
    if (range === 'unsatisfiable') {
      res.setHeader('content-range', `bytes */${size}`);
      return answerError(res, 416, 'PERCH_ERR_RANGE_NOT_SATISFIABLE', `the range '${req.headers.range ?? ''}' is not within the ${size} bytes of ${name} version ${version}`);
    }
    const [start, end] = range ?? [0, size - 1];
    if (range) {
      res.statusCode = 206;
      res.setHeader('content-range', `bytes ${start}-${end}/${size}`);
    }
    res.setHeader('content-length', String(Math.max(0, end - start + 1)));
    o.stats.httpRequests++;
    if (req.method === 'HEAD' || end < start) return void res.end();
    const sent = await streamRange(model, start, end, res);
    o.stats.httpBytesSent += sent;
    o.log.debug({ name, version, range: req.headers.range ?? null, start, end, sent }, 'model bytes sent');
  } finally {
    model.release();
  }
}

/** One byte range of `size` bytes, null for none (or one this server does not do: the whole file), or unsatisfiable. */
export function parseRange(header: string | undefined, size: number): [number, number] | null | 'unsatisfiable' {
  if (header === undefined) return null;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  // Several ranges or another unit: RFC 9110 lets a server ignore Range and send it all.
  if (!m || (m[1] === '' && m[2] === '')) return null;
  if (m[1] === '') {
    const n = Number(m[2]);
    if (n === 0 || size === 0) return 'unsatisfiable';
    return [Math.max(0, size - n), size - 1];
  }
  const start = Number(m[1]);
  const end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
  if (start >= size || end < start) return 'unsatisfiable';
  return [start, end];
}

/** Streams bytes start..end; returns how many were handed to the socket. */
async function streamRange(model: OpenModel, start: number, end: number, res: ServerResponse): Promise<number> {
  let pos = start;
  while (pos <= end && !res.destroyed) {
    const len = Math.min(READ_BYTES, end - pos + 1);
    const buf = Buffer.allocUnsafe(len);
    const { bytesRead } = await model.file.read(buf, 0, len, pos);
    if (bytesRead !== len) {
      res.destroy(new PerchError('PERCH_ERR_FLEET_MODEL_MISSING', 'model file shorter than its spec says'));
      return pos - start;
    }
    pos += len;
    if (!res.write(buf)) await waitDrain(res);
  }
  if (!res.destroyed) res.end();
  return pos - start;
}

function waitDrain(res: ServerResponse): Promise<void> {
  return new Promise<void>((resolve) => {
    const done = (): void => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.on('drain', done);
    res.on('close', done);
  });
}

function safeDecode(s: string): string | null {
  try {
    return decodeURIComponent(s);
  } catch {
    return null;
  }
}

function answerError(res: ServerResponse, status: number, code: string, message: string): void {
  const body = JSON.stringify({ error: message, code });
  res.statusCode = status;
  res.setHeader('content-type', 'application/json');
  res.setHeader('content-length', String(Buffer.byteLength(body)));
  res.end(body);
}
