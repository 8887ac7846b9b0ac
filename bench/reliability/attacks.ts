// The overload attacks of the reliability campaign (issue 12), each run for a bounded time
// against a real Perch process over loopback. Each returns a function that makes its clients
// leave, and counts what it saw. Loads are built once; the generators share the machine with
// Perch, so they are kept cheap (raw sockets, pre-encoded frames).
import { connect, type Socket } from 'node:net';
import WebSocket from 'ws';
import { encodeBinaryData } from '../../runtime/tensor/binary-codec.js';
import { clsInput, vadInputs } from '../../test/helpers/models.js';

export interface Attack {
  /** Counters the attack kept (answers by status or error code). */
  counts: Record<string, number>;
  /** Makes every client leave (sockets destroyed). */
  leave(): void;
}

const count = (c: Record<string, number>, k: string): void => {
  c[k] = (c[k] ?? 0) + 1;
};

function openWs(url: string): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false });
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });
}

function binaryFrame(header: Record<string, unknown>, parts: Uint8Array[]): Buffer {
  const json = Buffer.from(JSON.stringify(header));
  const len = Buffer.alloc(4);
  len.writeUInt32LE(json.length, 0);
  return Buffer.concat([len, json, ...parts]);
}

/** WebSocket clients that stream sequence chunks (answers with the state as JSON) and never read. */
export async function wsNonReaders(wsUrl: string, clients: number): Promise<Attack> {
  const counts: Record<string, number> = {};
  const inputs = vadInputs(1).filter((t) => t.name !== 'state');
  const parts = inputs.map(encodeBinaryData);
  const headerInputs = inputs.map((t, i) => ({ name: t.name, shape: t.shape, datatype: t.datatype, parameters: { binary_data_size: parts[i]!.byteLength } }));
  const sockets: WebSocket[] = [];
  for (let c = 0; c < clients; c++) {
    const ws = await openWs(wsUrl).catch(() => null);
    if (!ws) {
      count(counts, 'connect-failed');
      continue;
    }
    ws.on('error', () => undefined);
    ws.on('close', (code) => count(counts, `close-${code}`));
    (ws as unknown as { _socket: Socket })._socket.pause(); // never reads
    sockets.push(ws);
  }
  let n = 0;
  // Frames each client has sent: its first starts its sequence, and every 1,000th starts it
  // again. (One count over all clients started a sequence once per 1,000 frames of the whole
  // attack, so 95-98% of the frames were answered PERCH_ERR_SEQUENCE_UNKNOWN, not inferred.)
  const sent = new Array<number>(sockets.length).fill(0);
  const timer = setInterval(() => {
    for (const [c, ws] of sockets.entries()) {
      // The client's own buffer stays small; Perch gets as much as it reads (at most 50 frames
      // per client per tick, so a Perch that reads fast does not keep this loop from ending).
      for (let k = 0; k < 50 && ws.readyState === WebSocket.OPEN && ws.bufferedAmount < 256 * 1024; k++) {
        n++;
        const seq = { sequence_id: `s${c}`, ...(sent[c]!++ % 1000 === 0 ? { sequence_start: true } : {}) };
        ws.send(binaryFrame({ id: `${n}`, op: 'infer', model: 'silero-vad', inputs: headerInputs, outputs: [{ name: 'output' }, { name: 'stateN', parameters: { binary_data: false } }], parameters: seq }, parts));
      }
    }
  }, 50);
  return {
    counts,
    leave() {
      clearInterval(timer);
      for (const ws of sockets) ws.terminate();
    },
  };
}

function rawSocket(port: number, counts: Record<string, number>): Socket {
  const s = connect(port, '127.0.0.1');
  s.on('error', (e: NodeJS.ErrnoException) => count(counts, `error-${e.code ?? 'other'}`));
  let head = '';
  s.on('data', (d: Buffer) => {
    if (head.length < 12) {
      head += d.toString('latin1', 0, 12);
      if (head.length >= 12) count(counts, `status-${head.slice(9, 12)}`);
    }
  });
  return s;
}

/** HTTP clients that declare a large body, send all of it but its last byte, and hold. */
export function heldBodies(port: number, clients: number, bodyBytes: number): Attack {
  const counts: Record<string, number> = {};
  const chunk = Buffer.alloc(1024 * 1024, 0x20);
  const sockets = Array.from({ length: clients }, () => {
    const s = rawSocket(port, counts);
    s.once('connect', () => {
      s.write(`POST /v2/models/pp-ocr-cls/infer HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: ${bodyBytes}\r\n\r\n`);
      let left = bodyBytes - 1;
      const pump = (): void => {
        while (left > 0) {
          const n = Math.min(left, chunk.length);
          left -= n;
          if (!s.write(n === chunk.length ? chunk : chunk.subarray(0, n))) return void s.once('drain', pump);
        }
      };
      pump();
    });
    return s;
  });
  return { counts, leave: () => sockets.forEach((s) => s.destroy()) };
}

/** JSON bodies of short numbers (they expand when parsed), sent by `clients` in a loop. */
export function largeJson(port: number, clients: number, jsonBytes: number): Attack {
  const counts: Record<string, number> = {};
  const n = Math.floor((jsonBytes - 100) / 2);
  const body = Buffer.from(`{"inputs":[{"name":"x","datatype":"FP32","shape":[1,${n}],"data":[${'0,'.repeat(n - 1)}0]}]}`);
  let stopped = false;
  const sockets: Socket[] = [];
  const one = (): void => {
    if (stopped) return;
    const s = rawSocket(port, counts);
    sockets.push(s);
    s.once('connect', () => s.end(Buffer.concat([Buffer.from(`POST /v2/models/pp-ocr-cls/infer HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n`), body])));
    s.once('close', () => {
      sockets.splice(sockets.indexOf(s), 1);
      one();
    });
  };
  for (let i = 0; i < clients; i++) one();
  return { counts, leave: () => { stopped = true; sockets.forEach((s) => s.destroy()); } };
}

/** A flood of infer requests far past capacity: keep-alive HTTP connections and WebSockets, each pipelining. */
export async function flood(port: number, wsUrl: string, httpClients: number, wsClients: number): Promise<Attack> {
  const counts: Record<string, number> = {};
  const input = clsInput(3)[0]!;
  const bytes = encodeBinaryData(input);
  const header = Buffer.from(JSON.stringify({ inputs: [{ name: 'x', shape: input.shape, datatype: 'FP32', parameters: { binary_data_size: bytes.byteLength } }] }));
  const httpReq = Buffer.concat([
    Buffer.from(`POST /v2/models/pp-ocr-cls/infer HTTP/1.1\r\nHost: 127.0.0.1\r\nInference-Header-Content-Length: ${header.length}\r\nContent-Length: ${header.length + bytes.byteLength}\r\n\r\n`),
    header, bytes,
  ]);
  let stopped = false;
  const sockets: Socket[] = [];
  for (let i = 0; i < httpClients; i++) {
    const s = connect(port, '127.0.0.1');
    sockets.push(s);
    s.on('error', (e: NodeJS.ErrnoException) => count(counts, `http-error-${e.code ?? 'other'}`));
    // Pipelined: 4 requests out at a time; every answer (counted by its status line) sends one more.
    s.on('data', (d: Buffer) => {
      const text = d.toString('latin1');
      for (let at = text.indexOf('HTTP/1.1 '); at >= 0; at = text.indexOf('HTTP/1.1 ', at + 1)) {
        count(counts, `http-${text.slice(at + 9, at + 12)}`);
        if (!stopped) s.write(httpReq);
      }
    });
    s.once('connect', () => {
      for (let k = 0; k < 4; k++) s.write(httpReq);
    });
  }
  const frame = binaryFrame({ id: 'f', op: 'infer', model: 'pp-ocr-cls', inputs: [{ name: 'x', shape: input.shape, datatype: 'FP32', parameters: { binary_data_size: bytes.byteLength } }] }, [bytes]);
  const wss: WebSocket[] = [];
  // Opened all at once: one after another, each upgrade waited behind the HTTP flood already running.
  const opened = await Promise.all(Array.from({ length: wsClients }, () => openWs(wsUrl).catch(() => null)));
  for (const ws of opened) {
    if (!ws) {
      count(counts, 'ws-connect-failed');
      continue;
    }
    wss.push(ws);
    ws.on('error', () => undefined);
    ws.on('message', (d: Buffer) => {
      const m = /"ok":(true|false)(?:.*?"code":"(\w+)")?/.exec(d.toString('utf8', 0, Math.min(d.length, 400)));
      count(counts, `ws-${m?.[1] === 'true' ? 'ok' : (m?.[2] ?? 'other')}`);
      if (!stopped && ws.readyState === WebSocket.OPEN) ws.send(frame);
    });
    for (let k = 0; k < 16; k++) ws.send(frame);
  }
  return {
    counts,
    leave() {
      stopped = true;
      sockets.forEach((s) => s.destroy());
      wss.forEach((w) => w.terminate());
    },
  };
}

/** Connections that send their request head one byte per second (slowloris). */
export function slowHeaders(port: number, clients: number): Attack {
  const counts: Record<string, number> = {};
  const head = 'GET /v2/health/ready HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ' + 'a'.repeat(4000) + '\r\n\r\n';
  const sockets = Array.from({ length: clients }, () => rawSocket(port, counts));
  let at = 0;
  const timer = setInterval(() => {
    for (const s of sockets) if (!s.destroyed) s.write(head[at] ?? 'a');
    at++;
  }, 1000);
  return { counts, leave: () => { clearInterval(timer); sockets.forEach((s) => s.destroy()); } };
}
