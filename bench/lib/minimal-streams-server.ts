// The minimal served anchor of bench/streams.ts (issue 20): a hand-written sequence server for
// silero-vad in its own process, as Perch runs. Two worker threads each hold a session (as the
// shipped model.json's `instances: 2`); each stream's state stays here between its chunks (zeros
// at sequence_start, stateN of its last answer after), and whenever a thread is free it takes
// every chunk that is waiting (up to 64, the shipped maxBatchSize), stacked along the batch axis.
// A stream never has two chunks in one batch or in flight at once, so its state is always the
// one its previous chunk left. Answers leave each connection in one write per batch. No
// validation, budgets, metrics, logs, idle timeouts or queue delay; `GET /stats` gives the
// batches and items run so far (the benchmark's average batch).
// The overload campaign's anchor for its never-reading clients too (bench/reliability/overload.ts):
// their sequence wire as Perch answers it (sequence_end ends the stream, a chunk of no live
// stream gets PERCH_ERR_SEQUENCE_UNKNOWN, stateN as JSON when asked with binary_data false),
// health and the campaign's answer counts (minimal-control.ts), and a connection read no faster
// than its answers go out (minimal-pacing.ts).
// Run as a child: node dist/bench/lib/minimal-streams-server.js <silero-vad model.onnx>
import { createServer } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import WebSocket, { WebSocketServer } from 'ws';
import { controlAnswer, countError, newCounter } from './minimal-control.js';
import { Pacing } from './minimal-pacing.js';
import { jsonOutputs, parseWsFrame, readFeeds, SessionThread, wsAnswer, type Feed } from './minimal-wire.js';

const MODEL = 'silero-vad';
const THREADS = 2;
const MAX_BATCH = 64;
const INPUT = 576;
const STATE = 2 * 128;

interface Stream {
  state: Float32Array;
  /** A chunk of it is waiting in `ready` or running; later ones wait in `queue`. */
  busy: boolean;
  queue: Chunk[];
}

interface Chunk {
  ws: WebSocket;
  pacing: Pacing;
  id: unknown;
  /** The outputs it asked for as JSON (stateN, as the campaign's clients do). */
  asJson: ReadonlySet<string>;
  stream: Stream;
  input: Float32Array;
  sr: bigint;
}

const threads = await Promise.all(Array.from({ length: THREADS }, () => SessionThread.open(process.argv[2] as string)));
const streams = new Map<string, Stream>();
let ready: Chunk[] = [];
const stats = { batches: 0, items: 0 };
const counter = newCounter();

function dispatch(): void {
  for (const t of threads) {
    if (ready.length === 0) return;
    if (t.busy > 0) continue;
    // Everything waiting with the same sample rate (sr has no batch axis), up to MAX_BATCH.
    const sr = ready[0]!.sr;
    const batch: Chunk[] = [];
    const rest: Chunk[] = [];
    for (const c of ready) (batch.length < MAX_BATCH && c.sr === sr ? batch : rest).push(c);
    ready = rest;
    const n = batch.length;
    const input = new Float32Array(n * INPUT);
    const state = new Float32Array(n * STATE);
    batch.forEach((c, b) => {
      input.set(c.input, b * INPUT);
      // state is [2, n, 128]: layer l of item b at (l * n + b) * 128.
      state.set(c.stream.state.subarray(0, 128), b * 128);
      state.set(c.stream.state.subarray(128), (n + b) * 128);
    });
    const feeds: Feed[] = [
      { name: 'input', type: 'float32', dims: [n, INPUT], data: input },
      { name: 'state', type: 'float32', dims: [2, n, 128], data: state },
      { name: 'sr', type: 'int64', dims: [], data: BigInt64Array.of(sr) },
    ];
    stats.batches++;
    stats.items += n;
    t.run(feeds, (outputs) => answer(batch, outputs));
  }
}

function answer(batch: Chunk[], outputs: Feed[]): void {
  const n = batch.length;
  const out = outputs.find((o) => o.name === 'output')!.data as Float32Array;
  const stateN = outputs.find((o) => o.name === 'stateN')!.data as Float32Array;
  const corked = new Set<Socket>();
  batch.forEach((c, b) => {
    c.stream.state.set(stateN.subarray(b * 128, b * 128 + 128), 0);
    c.stream.state.set(stateN.subarray((n + b) * 128, (n + b) * 128 + 128), 128);
    const tcp = (c.ws as unknown as { _socket: Socket })._socket;
    if (!corked.has(tcp)) {
      corked.add(tcp);
      tcp.cork();
    }
    const answer: Feed[] = [{ name: 'output', type: 'float32', dims: [1, 1], data: out.subarray(b, b + 1) }];
    if (c.asJson.has('stateN')) answer.push({ name: 'stateN', type: 'float32', dims: [2, 1, 128], data: c.stream.state });
    counter.ok++;
    c.ws.send(wsAnswer(c.id, MODEL, answer, c.asJson));
    c.pacing.answered();
    const next = c.stream.queue.shift();
    if (next) ready.push(next);
    else c.stream.busy = false;
  });
  for (const tcp of corked) tcp.uncork();
  dispatch();
}

const server = createServer((req, res) => {
  if (controlAnswer(req, res, counter)) return;
  if (req.url === '/stats') res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(stats));
  else res.writeHead(404).end();
});
const wss = new WebSocketServer({ server, path: '/v1/ws', perMessageDeflate: false });
wss.on('connection', (ws) => {
  const pacing = new Pacing(ws);
  ws.on('message', (data: Buffer) => {
    const { header, bytes } = parseWsFrame(data);
    const seq = String(header.parameters?.sequence_id);
    let stream = streams.get(seq);
    if (header.parameters?.sequence_start === true) {
      stream = { state: new Float32Array(STATE), busy: false, queue: [] };
      streams.set(seq, stream);
    }
    if (!stream) {
      countError(counter, 'PERCH_ERR_SEQUENCE_UNKNOWN');
      ws.send(JSON.stringify({ id: header.id, ok: false, error: { code: 'PERCH_ERR_SEQUENCE_UNKNOWN', message: `no live sequence '${seq}'` } }));
      return;
    }
    // Its chunks already read still run; a later one names no live stream.
    if (header.parameters?.sequence_end === true) streams.delete(seq);
    const feeds = readFeeds(header, bytes, false);
    const input = feeds.find((f) => f.name === 'input')!.data as Float32Array;
    const sr = (feeds.find((f) => f.name === 'sr')!.data as BigInt64Array)[0]!;
    const chunk: Chunk = { ws, pacing, id: header.id, asJson: jsonOutputs(header), stream, input, sr };
    pacing.took();
    if (stream.busy) stream.queue.push(chunk);
    else {
      stream.busy = true;
      ready.push(chunk);
      dispatch();
    }
  });
});
server.listen(0, '127.0.0.1', () => {
  console.log(JSON.stringify({ msg: 'perch is serving', port: (server.address() as AddressInfo).port }));
});
process.on('SIGTERM', () => {
  for (const c of wss.clients) c.terminate();
  server.close(() => process.exit(0));
});
