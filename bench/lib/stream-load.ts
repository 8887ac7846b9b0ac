// The load generator of bench/streams.ts, run in its own process: `streams` real-time 16 kHz
// streams, each sending one 32 ms silero-vad chunk every 32 ms as a sequence and waiting for
// its answer before the next (a chunk whose answer comes after its successor is due goes out
// as soon as the answer arrives, and counts as lag). The first 2 s are warm-up, not measured.
//
// It is written to cost as little CPU as it can, because it shares the 2 cores with Perch: one
// 1 ms tick sends every chunk that is due (not one timer and one promise per chunk), frames are
// a pre-encoded per-stream header plus the pre-encoded chunk bytes, and the frames of one tick
// leave each socket in one write. What a hub's capture processes would do at this rate.
import WebSocket from 'ws';
import { chunkInputs, loadSpeech } from '../../test/helpers/vad.js';
import { corker } from './clients.js';
import { percentile } from './stats.js';

export const CHUNK_MS = 32;
/** Streams start (sequence_start) and run this long before anything is measured: the JIT of both
 * processes (the generator's own answer handling is slow for its first second or so). */
const WARMUP_MS = 2000;
const STREAMS_PER_CONNECTION = 20;
const SAMPLE_RATE = 16000;

export interface StreamLoadResult {
  p50: number;
  p99: number;
  /** The most any chunk went out after its due time, ms. */
  maxLagMs: number;
  /** Streams that fell more than one chunk period behind their schedule. */
  behind: number;
  errors: number;
  chunks: number;
  /** CPU the generator itself used per chunk, µs (it shares the cores with Perch). */
  cpuUsPerChunk: number;
}

interface Stream {
  conn: WebSocket;
  /** Pre-encoded headers: [first chunk (sequence_start), every later chunk]. */
  headers: [Buffer | string, Buffer | string];
  k: number;
  due: number;
  sentAt: number;
  inFlight: boolean;
  lateBy: number;
}

/** One binary frame header: [uint32 LE length][JSON]; the chunk's bytes follow. */
function binaryHeader(id: string, parameters: Record<string, unknown>): Buffer {
  const json = Buffer.from(JSON.stringify({
    id, op: 'infer', model: 'silero-vad', parameters,
    inputs: [
      { name: 'input', shape: [1, 576], datatype: 'FP32', parameters: { binary_data_size: 576 * 4 } },
      { name: 'sr', shape: [], datatype: 'INT64', parameters: { binary_data_size: 8 } },
    ],
  }));
  const len = Buffer.alloc(4);
  len.writeUInt32LE(json.length);
  return Buffer.concat([len, json]);
}

/** A JSON message minus its closing: the chunk's `inputs` are appended per send. */
function jsonHeader(id: string, parameters: Record<string, unknown>): string {
  const text = JSON.stringify({ id, op: 'infer', model: 'silero-vad', parameters });
  return text.slice(0, -1);
}

function connect(url: string): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false });
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });
}

export async function runStreamLoad(url: string, count: number, seconds: number, json: boolean): Promise<StreamLoadResult> {
  const chunks = chunkInputs(loadSpeech(), 0);
  const srBytes = Buffer.alloc(8);
  srBytes.writeBigInt64LE(BigInt(SAMPLE_RATE));
  const bodies: Array<Buffer | string> = chunks.map((c) => json
    ? `,"inputs":[{"name":"input","shape":[1,576],"datatype":"FP32","data":${JSON.stringify(Array.from(c))}},{"name":"sr","shape":[],"datatype":"INT64","data":[${SAMPLE_RATE}]}]}`
    : Buffer.concat([Buffer.from(c.buffer, c.byteOffset, c.byteLength), srBytes]));

  const conns = await Promise.all(Array.from({ length: Math.ceil(count / STREAMS_PER_CONNECTION) }, () => connect(url)));
  const corks = new Map(conns.map((c) => [c, corker(c)]));
  const t0 = performance.now() + 200;
  const measureFrom = t0 + WARMUP_MS;
  const end = measureFrom + seconds * 1000;
  const streams: Stream[] = Array.from({ length: count }, (_, i) => {
    const id = String(i);
    const seq = `stream-${i}`;
    const make = json ? jsonHeader : binaryHeader;
    return {
      conn: conns[Math.floor(i / STREAMS_PER_CONNECTION)] as WebSocket,
      headers: [make(id, { sequence_id: seq, sequence_start: true }), make(id, { sequence_id: seq })],
      k: 0,
      due: t0 + ((i * 7) % CHUNK_MS), // spread the streams over the 32 ms period
      sentAt: 0,
      inFlight: false,
      lateBy: 0,
    };
  });

  const latencies: number[] = [];
  let errors = 0;
  let maxLag = 0;
  let live = count;
  let finish: () => void = () => undefined;
  const finished = new Promise<void>((resolve) => (finish = resolve));

  const send = (s: Stream, now: number): void => {
    if (s.due > end) {
      live--;
      s.due = Infinity;
      if (live === 0) finish();
      return;
    }
    if (now >= measureFrom) {
      const lag = now - s.due;
      maxLag = Math.max(maxLag, lag);
      s.lateBy = Math.max(s.lateBy, lag);
    }
    const header = s.headers[s.k === 0 ? 0 : 1];
    const body = bodies[s.k % bodies.length] as Buffer | string;
    s.inFlight = true;
    s.sentAt = now;
    (corks.get(s.conn) as () => void)();
    if (json) s.conn.send((header as string) + (body as string));
    else s.conn.send(Buffer.concat([header as Buffer, body as Buffer]));
  };

  for (const conn of conns) {
    conn.on('message', (data: Buffer, isBinary) => {
      const text = isBinary ? data.toString('utf8', 4, 4 + data.readUInt32LE(0)) : data.toString();
      const h = JSON.parse(text) as { id: string; ok: boolean };
      const s = streams[Number(h.id)];
      if (!s?.inFlight) return;
      const now = performance.now();
      if (s.sentAt >= measureFrom) latencies.push(now - s.sentAt);
      if (!h.ok) errors++;
      s.inFlight = false;
      s.k++;
      s.due += CHUNK_MS;
      if (s.due <= now) send(s, now); // already late: no waiting for the tick
    });
  }

  let cpuAtStart: NodeJS.CpuUsage | null = null;
  setTimeout(() => (cpuAtStart = process.cpuUsage()), Math.max(0, measureFrom - performance.now()));
  const tick = (): void => {
    const now = performance.now();
    for (const s of streams) if (!s.inFlight && s.due <= now) send(s, now);
    if (live > 0) setTimeout(tick, 1);
  };
  setTimeout(tick, Math.max(0, t0 - performance.now()));
  await finished;
  const cpu = process.cpuUsage(cpuAtStart ?? undefined);
  for (const ws of conns) ws.close();
  const behind = streams.filter((s) => s.lateBy > CHUNK_MS).length;
  return { p50: percentile(latencies, 50), p99: percentile(latencies, 99), maxLagMs: maxLag, behind, errors, chunks: latencies.length, cpuUsPerChunk: (cpu.user + cpu.system) / Math.max(1, latencies.length) };
}
