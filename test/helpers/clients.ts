// Real HTTP and WebSocket clients speaking docs/protocol.md sections 2-4, for tests and benchmarks.
import WebSocket from 'ws';
import { decodeBinaryData, encodeBinaryData } from '../../runtime/tensor/binary-codec.js';
import { decodeJsonData, encodeJsonData } from '../../runtime/tensor/json-codec.js';
import type { Datatype } from '../../runtime/tensor/datatypes.js';
import type { Tensor } from '../../runtime/tensor/tensor.js';
import { waitFor } from './wait.js';

// Tests import waitFor from here too; there is one copy of it (wait.ts).
export { waitFor };

export interface HttpAnswer {
  status: number;
  body: Record<string, unknown>;
  outputs: Tensor[];
}

interface WireTensor {
  name: string;
  shape: number[];
  datatype: Datatype;
  data?: unknown[];
  parameters?: { binary_data_size?: number };
}

/** Decodes the outputs of an OIP response (JSON data or binary parts after the header). */
export function readOutputs(outputs: WireTensor[] | undefined, binary: Uint8Array): Tensor[] {
  let at = 0;
  return (outputs ?? []).map((o) => {
    const size = o.parameters?.binary_data_size;
    if (size === undefined) return { name: o.name, datatype: o.datatype, shape: o.shape, data: decodeJsonData(o.name, o.datatype, o.shape, o.data) };
    const part = binary.subarray(at, at + size);
    at += size;
    return { name: o.name, datatype: o.datatype, shape: o.shape, data: decodeBinaryData(o.name, o.datatype, o.shape, part) };
  });
}

export function jsonTensor(t: Tensor): WireTensor {
  return { name: t.name, shape: t.shape, datatype: t.datatype, data: encodeJsonData(t) };
}

export async function httpInfer(
  baseUrl: string,
  model: string,
  inputs: Tensor[],
  opts: { binary?: boolean; version?: number; parameters?: Record<string, unknown>; token?: string } = {},
): Promise<HttpAnswer> {
  const path = `${baseUrl}/v2/models/${model}${opts.version ? `/versions/${opts.version}` : ''}/infer`;
  const headers: Record<string, string> = {};
  if (opts.token) headers.authorization = `Bearer ${opts.token}`;
  let body: Buffer | string;
  if (opts.binary) {
    const parts = inputs.map(encodeBinaryData);
    const header = Buffer.from(JSON.stringify({
      inputs: inputs.map((t, i) => ({ name: t.name, shape: t.shape, datatype: t.datatype, parameters: { binary_data_size: (parts[i] as Uint8Array).byteLength } })),
      parameters: { binary_data_output: true, ...opts.parameters },
    }));
    headers['inference-header-content-length'] = String(header.length);
    headers['content-type'] = 'application/octet-stream';
    body = Buffer.concat([header, ...parts]);
  } else {
    headers['content-type'] = 'application/json';
    body = JSON.stringify({ inputs: inputs.map(jsonTensor), ...(opts.parameters ? { parameters: opts.parameters } : {}) });
  }
  const res = await fetch(path, { method: 'POST', headers, body });
  const raw = new Uint8Array(await res.arrayBuffer());
  const hl = res.headers.get('inference-header-content-length');
  const headerLen = hl === null ? raw.byteLength : Number(hl);
  const json = JSON.parse(Buffer.from(raw.subarray(0, headerLen)).toString('utf8')) as Record<string, unknown>;
  return { status: res.status, body: json, outputs: res.ok ? readOutputs(json.outputs as WireTensor[], raw.subarray(headerLen)) : [] };
}

export interface WsAnswer {
  id: string | null;
  ok: boolean;
  body: Record<string, unknown>;
  outputs: Tensor[];
}

/** A WebSocket client that matches answers to requests by id. */
export class WsClient {
  private nextId = 1;
  private readonly waiting = new Map<string, (a: WsAnswer) => void>();
  readonly notifications: Array<{ topic: string; data: unknown }> = [];
  /** Answers whose id matched nothing (e.g. id null for unreadable frames). */
  readonly orphans: WsAnswer[] = [];

  private constructor(readonly socket: WebSocket) {
    socket.on('message', (data: Buffer, isBinary) => this.onMessage(data, isBinary));
  }

  static connect(url: string, opts: { token?: string } = {}): Promise<WsClient> {
    const socket = new WebSocket(url, { headers: opts.token ? { authorization: `Bearer ${opts.token}` } : {}, perMessageDeflate: false });
    return new Promise((resolve, reject) => {
      socket.once('open', () => resolve(new WsClient(socket)));
      socket.once('error', reject);
      socket.once('unexpected-response', (_req, res) => reject(new Error(`upgrade refused: ${res.statusCode}`)));
    });
  }

  private onMessage(data: Buffer, isBinary: boolean): void {
    let header: Record<string, unknown>;
    let binary = new Uint8Array(0);
    if (isBinary) {
      const n = data.readUInt32LE(0);
      header = JSON.parse(data.subarray(4, 4 + n).toString('utf8')) as Record<string, unknown>;
      binary = new Uint8Array(data.subarray(4 + n));
    } else {
      header = JSON.parse(data.toString('utf8')) as Record<string, unknown>;
    }
    if (header.op === 'notify') {
      this.notifications.push({ topic: header.topic as string, data: header.data });
      return;
    }
    const result = header.result as { outputs?: WireTensor[] } | undefined;
    const answer: WsAnswer = {
      id: (header.id as string | null) ?? null,
      ok: header.ok === true,
      body: header,
      outputs: header.ok === true && result ? readOutputs(result.outputs, binary) : [],
    };
    const w = answer.id !== null ? this.waiting.get(answer.id) : undefined;
    if (w) {
      this.waiting.delete(answer.id as string);
      w(answer);
    } else {
      this.orphans.push(answer);
    }
  }

  /** Sends a message (an id is added when missing) and waits for its answer. */
  request(message: Record<string, unknown>): Promise<WsAnswer> {
    const id = (message.id as string | undefined) ?? `r${this.nextId++}`;
    const p = new Promise<WsAnswer>((resolve) => this.waiting.set(id, resolve));
    this.socket.send(JSON.stringify({ ...message, id }));
    return p;
  }

  infer(model: string, inputs: Tensor[], opts: { binary?: boolean; parameters?: Record<string, unknown>; version?: number } = {}): Promise<WsAnswer> {
    const id = `r${this.nextId++}`;
    const p = new Promise<WsAnswer>((resolve) => this.waiting.set(id, resolve));
    const base = { id, op: 'infer', model, ...(opts.version ? { version: opts.version } : {}), ...(opts.parameters ? { parameters: opts.parameters } : {}) };
    if (opts.binary) {
      const parts = inputs.map(encodeBinaryData);
      const header = Buffer.from(JSON.stringify({
        ...base,
        inputs: inputs.map((t, i) => ({ name: t.name, shape: t.shape, datatype: t.datatype, parameters: { binary_data_size: (parts[i] as Uint8Array).byteLength } })),
      }));
      const len = Buffer.alloc(4);
      len.writeUInt32LE(header.length, 0);
      this.socket.send(Buffer.concat([len, header, ...parts]));
    } else {
      this.socket.send(JSON.stringify({ ...base, inputs: inputs.map(jsonTensor) }));
    }
    return p;
  }

  /** Sends raw bytes or text (malformed frames in tests). */
  sendRaw(data: string | Buffer, binary = typeof data !== 'string'): void {
    this.socket.send(data, { binary });
  }

  /** The next answer that matched no pending request. */
  async nextOrphan(): Promise<WsAnswer> {
    await waitFor(() => this.orphans.length > 0);
    return this.orphans.shift() as WsAnswer;
  }

  close(): Promise<void> {
    if (this.socket.readyState === WebSocket.CLOSED) return Promise.resolve();
    return new Promise((resolve) => {
      this.socket.once('close', () => resolve());
      this.socket.close();
    });
  }
}

