// Low-level wire helpers for robustness tests: raw HTTP requests with any body and headers,
// binary frames and bodies whose sizes may lie, a WebSocket that records every frame and its
// close code, upgrade probes, Prometheus text parsing, and child processes that are killed on
// test failure.
import { spawn, type ChildProcess } from 'node:child_process';
import { request } from 'node:http';
import WebSocket from 'ws';
import { encodeBinaryData } from '../../runtime/tensor/binary-codec.js';
import type { Tensor } from '../../runtime/tensor/tensor.js';
import { jsonTensor, waitFor } from './clients.js';

export interface RawAnswer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  /** The body parsed as JSON, or undefined when it is not JSON. */
  json: Record<string, unknown> | undefined;
}

/**
 * One HTTP request over a fresh connection (no pooling, so one test's half-read body cannot
 * affect the next). `body` as an array of chunks is sent with chunked encoding (no length).
 */
export function rawRequest(
  baseUrl: string,
  method: string,
  path: string,
  opts: { body?: string | Buffer | Buffer[]; headers?: Record<string, string> } = {},
): Promise<RawAnswer> {
  const url = new URL(path, baseUrl);
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { connection: 'close', ...opts.headers };
    const chunked = Array.isArray(opts.body);
    if (opts.body !== undefined && !chunked && headers['content-length'] === undefined) {
      headers['content-length'] = String(Buffer.byteLength(opts.body as string | Buffer));
    }
    const req = request(url, { method, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json: Record<string, unknown> | undefined;
        try {
          json = JSON.parse(text) as Record<string, unknown>;
        } catch {
          json = undefined;
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json });
      });
      res.on('error', reject);
    });
    // The server may answer (413) and stop reading before the whole body is written.
    req.on('error', reject);
    if (chunked) {
      for (const c of opts.body as Buffer[]) req.write(c);
      req.end();
    } else {
      req.end(opts.body);
    }
  });
}

export function postJson(baseUrl: string, path: string, body: unknown, headers: Record<string, string> = {}): Promise<RawAnswer> {
  return rawRequest(baseUrl, 'POST', path, { body: typeof body === 'string' ? body : JSON.stringify(body), headers: { 'content-type': 'application/json', ...headers } });
}

export interface BinaryTensorPart {
  /** Header entry for the tensor (name, shape, datatype, parameters.binary_data_size). */
  header: Record<string, unknown>;
  bytes: Uint8Array;
}

/** Binary entries for tensors, sizes telling the truth. */
export function binaryParts(inputs: Tensor[]): BinaryTensorPart[] {
  return inputs.map((t) => {
    const bytes = encodeBinaryData(t);
    return { header: { name: t.name, shape: t.shape, datatype: t.datatype, parameters: { binary_data_size: bytes.byteLength } }, bytes };
  });
}

/** OIP binary HTTP body: JSON header then the bytes; returns the body and its header length. */
export function binaryBody(header: unknown, chunks: readonly Uint8Array[]): { body: Buffer; headerLength: number } {
  const json = Buffer.from(JSON.stringify(header));
  return { body: Buffer.concat([json, ...chunks]), headerLength: json.length };
}

/** WebSocket binary frame `[uint32 LE header length][JSON header][bytes...]`; `declaredLength` may lie. */
export function binaryFrame(header: unknown, chunks: readonly Uint8Array[], declaredLength?: number): Buffer {
  const json = Buffer.from(JSON.stringify(header));
  const prefix = Buffer.alloc(4);
  prefix.writeUInt32LE(declaredLength ?? json.length, 0);
  return Buffer.concat([prefix, json, ...chunks]);
}

/** A JSON infer body (HTTP) for `inputs`. */
export function inferBody(inputs: Tensor[], extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { inputs: inputs.map(jsonTensor), ...extra };
}

export interface RecordedMessage {
  isBinary: boolean;
  /** The JSON of a text frame, or the JSON header of a binary frame (undefined if unreadable). */
  header: Record<string, unknown> | undefined;
  size: number;
}

/**
 * A WebSocket that records every message and its close code; no request matching, so tests can
 * count answers per id and see answers to frames that carried none.
 */
export class RecordingWs {
  readonly messages: RecordedMessage[] = [];
  closeCode: number | null = null;

  private constructor(readonly socket: WebSocket) {
    socket.on('message', (data: Buffer, isBinary) => this.messages.push({ isBinary, header: parseHeader(data, isBinary), size: data.length }));
    socket.on('close', (code) => (this.closeCode = code));
    socket.on('error', () => undefined); // a refused or reset socket shows as closeCode
  }

  static async connect(url: string, opts: { headers?: Record<string, string> } = {}): Promise<RecordingWs> {
    const socket = new WebSocket(url, { headers: opts.headers ?? {}, perMessageDeflate: false });
    await new Promise<void>((resolve, reject) => {
      socket.once('open', () => resolve());
      socket.once('error', reject);
    });
    return new RecordingWs(socket);
  }

  /** Answers (not notify pushes) with this id. */
  answers(id: string | number | null): Record<string, unknown>[] {
    return this.messages.filter((m) => m.header && m.header.op !== 'notify' && m.header.id === id).map((m) => m.header as Record<string, unknown>);
  }

  async waitAnswer(id: string | number | null, count = 1, timeoutMs = 20_000): Promise<Record<string, unknown>> {
    await waitFor(() => this.answers(id).length >= count || this.closeCode !== null, timeoutMs, `answer ${count} to ${String(id)}`);
    const a = this.answers(id)[count - 1];
    if (!a) throw new Error(`connection closed (${this.closeCode}) before answer ${count} to ${String(id)}`);
    return a;
  }

  async waitClosed(timeoutMs = 20_000): Promise<number> {
    await waitFor(() => this.closeCode !== null, timeoutMs, 'close');
    return this.closeCode as number;
  }

  close(): Promise<void> {
    if (this.socket.readyState === WebSocket.CLOSED) return Promise.resolve();
    return new Promise((resolve) => {
      this.socket.once('close', () => resolve());
      if (this.socket.readyState === WebSocket.CONNECTING) this.socket.terminate();
      else this.socket.close();
    });
  }
}

function parseHeader(data: Buffer, isBinary: boolean): Record<string, unknown> | undefined {
  try {
    if (!isBinary) return JSON.parse(data.toString('utf8')) as Record<string, unknown>;
    const n = data.readUInt32LE(0);
    return JSON.parse(data.subarray(4, 4 + n).toString('utf8')) as Record<string, unknown>;
  } catch {
    return undefined;
  }
}

/** Tries a WebSocket upgrade: 101 when accepted (the socket is closed again), else the refusal status. */
export function upgradeStatus(url: string, headers: Record<string, string> = {}): Promise<number> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(url, { headers, perMessageDeflate: false });
    socket.once('open', () => {
      socket.once('close', () => resolve(101));
      socket.close();
    });
    socket.once('unexpected-response', (_req, res) => {
      resolve(res.statusCode ?? 0);
      res.resume();
      socket.terminate();
    });
    socket.once('error', (err) => {
      if (socket.readyState !== WebSocket.CLOSED) reject(err);
    });
  });
}

/** The value of one Prometheus sample (0 when absent); `labels` must all match. */
export function metricValue(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (.+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = new Map<string, string>();
    for (const kv of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) have.set(kv[1] as string, kv[2] as string);
    if (Object.entries(labels).every(([k, v]) => have.get(k) === v)) sum += Number(m[3]);
  }
  return sum;
}

export async function scrape(baseUrl: string, token?: string): Promise<string> {
  const res = await fetch(`${baseUrl}/metrics`, { headers: token ? { authorization: `Bearer ${token}` } : {} });
  return res.text();
}

/** A child process whose stdout and stderr are collected; `kill()` is safe to call twice. */
export class Child {
  stdout = '';
  stderr = '';
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private done = false;

  constructor(readonly proc: ChildProcess) {
    proc.stdout?.setEncoding('utf8').on('data', (s: string) => (this.stdout += s));
    proc.stderr?.setEncoding('utf8').on('data', (s: string) => (this.stderr += s));
    this.exited = new Promise((resolve) => {
      proc.once('exit', (code, signal) => {
        this.done = true;
        resolve({ code, signal });
      });
    });
  }

  static spawn(command: string, args: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string } = {}): Child {
    return new Child(spawn(command, args, { env: opts.env ?? process.env, cwd: opts.cwd, stdio: ['ignore', 'pipe', 'pipe'] }));
  }

  get running(): boolean {
    return !this.done;
  }

  /** JSON log lines printed so far (pino on stdout). */
  logLines(): Array<Record<string, unknown>> {
    const out: Array<Record<string, unknown>> = [];
    for (const line of this.stdout.split('\n')) {
      if (!line.startsWith('{')) continue;
      try {
        out.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        // a line still being written
      }
    }
    return out;
  }

  async kill(): Promise<void> {
    if (this.done) return;
    this.proc.kill('SIGKILL');
    await this.exited;
  }
}

/** Tries a WebSocket upgrade and returns the refusal (status, headers, JSON body), or status 101 when accepted. */
export function upgradeAnswer(url: string, headers: Record<string, string> = {}): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(url, { headers, perMessageDeflate: false });
    socket.once('open', () => {
      socket.once('close', () => resolve({ status: 101, headers: {}, text: '', json: undefined }));
      socket.close();
    });
    socket.once('unexpected-response', (_req, res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json: Record<string, unknown> | undefined;
        try {
          json = JSON.parse(text) as Record<string, unknown>;
        } catch {
          json = undefined;
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json });
        socket.terminate();
      });
    });
    socket.once('error', (err) => {
      if (socket.readyState !== WebSocket.CLOSED) reject(err);
    });
  });
}
