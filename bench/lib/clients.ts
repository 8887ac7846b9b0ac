// Lean load-generator clients for docs/protocol.md sections 2-4. Request frames and bodies are encoded
// once before timing starts, so the measured time is Perch's (plus the socket), not the load
// generator re-encoding tensors; answers are parsed only as far as their JSON header.
import { Agent, request } from 'node:http';
import type { Socket } from 'node:net';
import WebSocket from 'ws';
import { encodeBinaryData } from '../../runtime/tensor/binary-codec.js';
import type { Tensor } from '../../runtime/tensor/tensor.js';
import { jsonTensor, readOutputs } from '../../test/helpers/clients.js';

export interface Answer {
  header: Record<string, unknown>;
  /** Bytes after the JSON header (binary tensors), empty for JSON answers. */
  binary: Uint8Array;
}

/** The output tensors of an answer (WS: inside `result`; HTTP: the body itself). */
export function answerOutputs(a: Answer): Tensor[] {
  const body = (a.header.result ?? a.header) as { outputs?: Parameters<typeof readOutputs>[0] };
  return readOutputs(body.outputs, a.binary);
}

function binaryHeaderInputs(inputs: readonly Tensor[], parts: readonly Uint8Array[]) {
  return inputs.map((t, i) => ({ name: t.name, shape: t.shape, datatype: t.datatype, parameters: { binary_data_size: (parts[i] as Uint8Array).byteLength } }));
}

/** WS binary frame: [uint32 LE header length][JSON header][tensor bytes...] (docs/protocol.md section 2). */
export function wsBinaryFrame(id: string, model: string, inputs: readonly Tensor[]): Buffer {
  const parts = inputs.map(encodeBinaryData);
  const header = Buffer.from(JSON.stringify({ id, op: 'infer', model, inputs: binaryHeaderInputs(inputs, parts) }));
  const len = Buffer.alloc(4);
  len.writeUInt32LE(header.length, 0);
  return Buffer.concat([len, header, ...parts]);
}

export function wsJsonFrame(id: string, model: string, inputs: readonly Tensor[]): string {
  return JSON.stringify({ id, op: 'infer', model, inputs: inputs.map(jsonTensor) });
}

/**
 * Holds a client socket's writes until the end of the tick, so frames sent in one tick (each
 * answer of a batch sends the next request) leave in one syscall, as a client sending at this
 * rate would do: the load generators share the 2 cores with Perch, and a write per frame was
 * most of their cost. (ws keeps the TCP socket in `_socket`; there is no public handle.)
 */
export function corker(ws: WebSocket): () => void {
  const tcp = (ws as unknown as { _socket: Socket })._socket;
  let corked = false;
  return () => {
    if (corked) return;
    corked = true;
    tcp.cork();
    process.nextTick(() => {
      corked = false;
      tcp.uncork();
    });
  };
}

/** A WebSocket connection that matches answers to requests by id; several may be in flight. */
export class BenchWs {
  private readonly waiting = new Map<string, { resolve: (a: Answer) => void; reject: (e: Error) => void }>();
  private readonly cork: () => void;

  private constructor(readonly socket: WebSocket) {
    this.cork = corker(socket);
    socket.on('message', (data: Buffer, isBinary) => this.onMessage(data, isBinary));
    socket.on('close', () => {
      for (const w of this.waiting.values()) w.reject(new Error('websocket closed'));
      this.waiting.clear();
    });
  }

  static connect(url: string): Promise<BenchWs> {
    const socket = new WebSocket(url, { perMessageDeflate: false });
    return new Promise((resolve, reject) => {
      socket.once('open', () => resolve(new BenchWs(socket)));
      socket.once('error', reject);
    });
  }

  private onMessage(data: Buffer, isBinary: boolean): void {
    let header: Record<string, unknown>;
    let binary: Uint8Array = new Uint8Array(0);
    if (isBinary) {
      const n = data.readUInt32LE(0);
      header = JSON.parse(data.toString('utf8', 4, 4 + n)) as Record<string, unknown>;
      binary = data.subarray(4 + n);
    } else {
      header = JSON.parse(data.toString('utf8')) as Record<string, unknown>;
    }
    const id = header.id as string;
    const w = this.waiting.get(id);
    if (!w) return;
    this.waiting.delete(id);
    if (header.ok !== true) w.reject(new Error(`request ${id} failed: ${JSON.stringify(header.error)}`));
    else w.resolve({ header, binary });
  }

  /** Sends a pre-encoded frame whose id is `id`; resolves with its answer. */
  send(id: string, frame: Buffer | string): Promise<Answer> {
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      this.cork();
      this.socket.send(frame, { binary: typeof frame !== 'string' });
    });
  }

  close(): Promise<void> {
    if (this.socket.readyState === WebSocket.CLOSED) return Promise.resolve();
    return new Promise((resolve) => {
      this.socket.once('close', () => resolve());
      this.socket.close();
    });
  }
}

export interface HttpBody {
  body: Buffer;
  headers: Record<string, string>;
}

/** OIP binary request: JSON header (length in Inference-Header-Content-Length) then the tensor bytes. */
export function httpBinaryBody(inputs: readonly Tensor[]): HttpBody {
  const parts = inputs.map(encodeBinaryData);
  const header = Buffer.from(JSON.stringify({ inputs: binaryHeaderInputs(inputs, parts), parameters: { binary_data_output: true } }));
  return {
    body: Buffer.concat([header, ...parts]),
    headers: { 'content-type': 'application/octet-stream', 'inference-header-content-length': String(header.length) },
  };
}

export function httpJsonBody(inputs: readonly Tensor[]): HttpBody {
  return { body: Buffer.from(JSON.stringify({ inputs: inputs.map(jsonTensor) })), headers: { 'content-type': 'application/json' } };
}

/** node:http with one keep-alive socket per in-flight request (no per-request TCP handshake). */
export class BenchHttp {
  private readonly agent: Agent;

  /** `socketPath`: talk to a Unix domain socket (server.socketPath) instead of TCP. */
  constructor(private readonly baseUrl: string, maxSockets = 1, private readonly socketPath?: string) {
    this.agent = new Agent({ keepAlive: true, maxSockets });
  }

  infer(model: string, b: HttpBody): Promise<Answer> {
    const url = new URL(`/v2/models/${model}/infer`, this.baseUrl);
    return new Promise((resolve, reject) => {
      const req = request(url, { method: 'POST', agent: this.agent, ...(this.socketPath ? { socketPath: this.socketPath } : {}), headers: { ...b.headers, 'content-length': String(b.body.length) } }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          const raw = chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks);
          const hl = res.headers['inference-header-content-length'];
          const n = typeof hl === 'string' ? Number(hl) : raw.length;
          const header = JSON.parse(raw.toString('utf8', 0, n)) as Record<string, unknown>;
          if (res.statusCode !== 200) reject(new Error(`HTTP ${res.statusCode}: ${JSON.stringify(header)}`));
          else resolve({ header, binary: raw.subarray(n) });
        });
      });
      req.on('error', reject);
      req.end(b.body);
    });
  }

  close(): void {
    this.agent.destroy();
  }
}
