// Issue 20: where a request's wall time goes inside Perch, independent of the host's noise: one
// client, one request at a time (PP-OCR cls, 110 KB input, binary tensors over WebSocket and
// HTTP), Perch with OpenTelemetry traces on (every request; docs/observability.md) exporting to a
// sink in this process that keeps the spans. Per request, from its spans: receive (read and
// decode), before the queue (model resolution, prepare, submit), queue, the batch's stack, the
// session's own run (measured on the session thread), the hop (compute - stack - run - split: the
// postMessage both ways and the waits of both threads, and for a lookahead batch its wait behind
// the batch before it on the same session thread), split, after the batch (promises back to
// the API), answer (encode and write), and outside (client latency - the request span: the
// loopback transport, the wake-ups before the socket is read, the client). p50 of each stage over
// the requests, beside raw session.run in this process (back to back, and after a 2 ms sleep of
// the thread, as a session thread between requests). Traces cost ~1-3% (overhead.ts rows).
// With --streams N: the same stages for the chunks of N real-time VAD streams (shipped
// silero-vad as a sequence model, bench/lib/stream-load.ts in its own process, 4 s), p50 and p99
// per stage over every chunk answered after the warm-up: where a stream chunk's time goes.
//   node dist/bench/decompose.js [--requests 400] [--executor worker|inline|both] [--streams 150]
import { spawn } from 'node:child_process';
import { loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { clsInput } from '../test/helpers/models.js';
import { SHIPPED_MODELS } from '../test/helpers/paths.js';
import { flag, numberFlag } from './lib/args.js';
import { BenchHttp, BenchWs, httpBinaryBody, wsBinaryFrame } from './lib/clients.js';
import { startOtlpSink } from './lib/otlp-sink.js';
import { buildRepository, startPerch, withExecutor } from './lib/perch-server.js';
import { openRaw, runRaw } from './lib/raw-ort.js';
import { saveSection } from './lib/results.js';
import { median, percentile, printTable } from './lib/stats.js';
import type { StreamLoadResult } from './lib/stream-load.js';
import { waitFor } from '../test/helpers/wait.js';

const MODEL = 'pp-ocr-cls';
const REQUESTS = numberFlag('requests', 400);
const WARMUP = 100;
const EXECUTOR_ARG = flag('executor') ?? 'both';
const STREAMS = numberFlag('streams', 0);
const EXECUTORS = EXECUTOR_ARG === 'both' ? ['worker', 'inline'] as const : [EXECUTOR_ARG as 'worker' | 'inline'];

interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  startTimeUnixNano: string;
  endTimeUnixNano: string;
  attributes?: Array<{ key: string; value: { stringValue?: string; boolValue?: boolean } }>;
  links?: Array<{ spanId: string }>;
}

const STAGES = ['receive', 'before queue', 'queue', 'stack', 'session.run (thread)', 'hop + lookahead wait', 'split', 'after batch', 'answer', 'in process (request span)', 'own (in process - run)', 'outside process', 'client latency'] as const;
type Stage = (typeof STAGES)[number];

function spansOf(bodies: unknown[]): OtlpSpan[] {
  const out: OtlpSpan[] = [];
  for (const b of bodies as Array<{ resourceSpans?: Array<{ scopeSpans?: Array<{ spans?: OtlpSpan[] }> }> }>) {
    for (const rs of b.resourceSpans ?? []) for (const ss of rs.scopeSpans ?? []) out.push(...(ss.spans ?? []));
  }
  return out;
}

const ms = (ns: bigint): number => Number(ns) / 1e6;
const t0 = (s: OtlpSpan): bigint => BigInt(s.startTimeUnixNano);
const t1 = (s: OtlpSpan): bigint => BigInt(s.endTimeUnixNano);
const dur = (s: OtlpSpan): number => ms(t1(s) - t0(s));

/** Per traced request of `transport`: each stage in ms. */
type Row = Record<Exclude<Stage, 'client latency' | 'outside process'>, number> & {
  /** Its batch was handed to a session still running another (perch.batch.ahead). */
  ahead: boolean;
};

function decompose(spans: OtlpSpan[], transport: string): Row[] {
  const byId = new Map(spans.map((s) => [s.spanId, s]));
  const children = new Map<string, OtlpSpan[]>();
  for (const s of spans) if (s.parentSpanId) children.set(s.parentSpanId, [...(children.get(s.parentSpanId) ?? []), s]);
  const child = (parent: OtlpSpan, name: string): OtlpSpan | undefined => children.get(parent.spanId)?.find((c) => c.name === name);
  const rows: Row[] = [];
  for (const req of spans) {
    if (req.name !== 'perch.request') continue;
    if (!req.attributes?.some((a) => a.key === 'perch.transport' && a.value.stringValue === transport)) continue;
    const receive = child(req, 'perch.receive');
    const queue = child(req, 'perch.queue');
    const compute = child(req, 'perch.compute');
    const answer = child(req, 'perch.answer');
    const batch = compute?.links?.[0] ? byId.get(compute.links[0].spanId) : undefined;
    if (!receive || !queue || !compute || !answer || !batch) continue;
    const stack = child(batch, 'perch.stack');
    const run = child(batch, 'perch.session.run');
    const split = child(batch, 'perch.split');
    if (!stack || !run || !split) continue;
    rows.push({
      receive: dur(receive),
      'before queue': ms(t0(queue) - t1(receive)),
      queue: dur(queue),
      stack: dur(stack),
      'session.run (thread)': dur(run),
      // perch.compute starts at dispatch: a lookahead batch's wait behind the batch before it on
      // the same session thread is in here too, not only the two thread hops.
      'hop + lookahead wait': dur(compute) - dur(stack) - dur(run) - dur(split),
      split: dur(split),
      'after batch': ms(t0(answer) - t1(compute)),
      answer: dur(answer),
      'in process (request span)': dur(req),
      'own (in process - run)': dur(req) - dur(run),
      ahead: batch.attributes?.some((a) => a.key === 'perch.batch.ahead' && a.value.boolValue === true) ?? false,
    });
  }
  return rows;
}

/** Stream chunks, stage by stage: the shipped silero-vad (sequence state kept by Perch). */
async function streamsMode(): Promise<void> {
  const seconds = 4;
  console.log(`# decompose (issue 20): ${STREAMS} real-time VAD streams for ${seconds} s after 2 s of warm-up, traces on for every chunk; load ${loadavg()[0]!.toFixed(2)}`);
  const sink = await startOtlpSink(true);
  const server = await startPerch({ repository: buildRepository(['silero-vad']), ownRepository: true, config: { telemetry: { traces: { endpoint: sink.url, sampleRatio: 1 } } } });
  let result: StreamLoadResult;
  try {
    const script = fileURLToPath(new URL('./streams.js', import.meta.url));
    result = await new Promise<StreamLoadResult>((resolve, reject) => {
      const child = spawn(process.execPath, [script, '--generate', server.wsUrl, String(STREAMS), String(seconds), 'binary'], { stdio: ['ignore', 'pipe', 'inherit'] });
      let out = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      child.once('exit', (code) => (code === 0 ? resolve(JSON.parse(out.trim()) as StreamLoadResult) : reject(new Error(`generator exited ${code}`))));
    });
    // Every chunk's span has ended once its answer was written; the exporter sends within 2 s.
    const sent = (): number => spansOf(sink.bodies).filter((sp) => sp.name === 'perch.request').length;
    let last = -1;
    await waitFor(() => {
      const n = sent();
      const still = n === last;
      last = n;
      return still && n > 0;
    }, 60_000, 'the exports to stop growing', 3000);
  } finally {
    await server.stop();
    await sink.close();
  }
  const rows = decompose(spansOf(sink.bodies), 'ws');
  const measured = rows.slice(Math.floor(rows.length / 3)); // the warm-up's third of the chunks (2 of 6 s) left out
  const stages = STAGES.filter((st) => st !== 'client latency' && st !== 'outside process') as Array<Exclude<Stage, 'client latency' | 'outside process'>>;
  printTable(
    `${STREAMS} streams: per stage over ${measured.length} chunks, ms (the generator: p50 ${result.p50.toFixed(2)}, p99 ${result.p99.toFixed(2)} ms client latency; ${result.behind} streams behind)`,
    ['', ...stages],
    [['p50', ...stages.map((st) => median(measured.map((r) => r[st])).toFixed(3))], ['p99', ...stages.map((st) => percentile(measured.map((r) => r[st]), 99).toFixed(3))]],
  );
  // The hop apart from the lookahead wait: chunks whose batch went to an idle session, and those
  // whose batch was handed ahead to a session still running another (perch.batch.ahead).
  const hops = (ahead: boolean) => {
    const h = measured.filter((r) => r.ahead === ahead).map((r) => r['hop + lookahead wait']);
    return { chunks: h.length, p50: median(h), p99: percentile(h, 99) };
  };
  const [idle, ahead] = [hops(false), hops(true)];
  console.log(`hop, batch to an idle session: p50 ${idle.p50.toFixed(3)} p99 ${idle.p99.toFixed(3)} ms (${idle.chunks} chunks); `
    + `hop + wait, batch handed ahead to a busy session: p50 ${ahead.p50.toFixed(3)} p99 ${ahead.p99.toFixed(3)} ms (${ahead.chunks} chunks, ${((100 * ahead.chunks) / Math.max(1, measured.length)).toFixed(0)}%)`);
  saveSection('decomposeStreams', {
    streams: STREAMS,
    chunks: measured.length,
    client: result,
    hopByBatch: { idleSession: idle, handedAhead: ahead },
    p50: Object.fromEntries(stages.map((st) => [st, median(measured.map((r) => r[st]))])),
    p99: Object.fromEntries(stages.map((st) => [st, percentile(measured.map((r) => r[st]), 99)])),
  }, `node dist/bench/decompose.js --streams ${STREAMS}`);
}

async function main(): Promise<void> {
  if (STREAMS > 0) return streamsMode();
  const load = loadavg()[0]!.toFixed(2);
  console.log(`# decompose (issue 20): ${MODEL}, ${REQUESTS} requests per path after ${WARMUP} warm-up, one at a time; traces on, every request; load ${load}`);
  const inputs = Array.from({ length: 8 }, (_, k) => clsInput(k));
  const raw = await openRaw(join(SHIPPED_MODELS, MODEL, '1', 'model.onnx'));
  const rawMs: number[] = [];
  const rawPausedMs: number[] = [];
  const asleep = new Int32Array(new SharedArrayBuffer(4));
  // Back to back (every benchmark's raw anchor), then each run after the thread slept 2 ms, as a
  // session thread does between one client's requests: on this host a run after a pause costs
  // more CPU (bench/session-thread.ts), which the back-to-back anchor leaves in "own time".
  const rawPhase = async (): Promise<void> => {
    for (let i = 0; i < REQUESTS / 2; i++) {
      const t = performance.now();
      await runRaw(raw, inputs[i % 8]!);
      rawMs.push(performance.now() - t);
    }
    for (let i = 0; i < REQUESTS / 4; i++) {
      Atomics.wait(asleep, 0, 0, 2);
      const t = performance.now();
      await runRaw(raw, inputs[i % 8]!);
      rawPausedMs.push(performance.now() - t);
    }
  };
  const results: Record<string, unknown> = {};
  for (const executor of EXECUTORS) {
    const sink = await startOtlpSink(true);
    const server = await startPerch({ repository: buildRepository([MODEL], withExecutor(executor)), ownRepository: true, config: { telemetry: { traces: { endpoint: sink.url, sampleRatio: 1 } } } });
    const ws = await BenchWs.connect(server.wsUrl);
    const http = new BenchHttp(server.baseUrl);
    const frames = inputs.map((x, k) => wsBinaryFrame(`r${k}`, MODEL, x));
    const bodies = inputs.map((x) => httpBinaryBody(x));
    const client: Record<string, number[]> = { ws: [], http: [] };
    try {
      for (let i = 0; i < WARMUP; i++) {
        await ws.send(`r${i % 8}`, frames[i % 8]!);
        await http.infer(MODEL, bodies[i % 8]!);
      }
      await rawPhase();
      for (let i = 0; i < REQUESTS; i++) {
        let t = performance.now();
        await ws.send(`r${i % 8}`, frames[i % 8]!);
        client.ws!.push(performance.now() - t);
        t = performance.now();
        await http.infer(MODEL, bodies[i % 8]!);
        client.http!.push(performance.now() - t);
      }
      await rawPhase();
      const expected = 2 * (REQUESTS + WARMUP);
      await waitFor(() => spansOf(sink.bodies).filter((s) => s.name === 'perch.request').length >= expected, 30_000, 'every request span exported');
    } finally {
      await ws.close();
      http.close();
      await server.stop();
      await sink.close();
    }
    const spans = spansOf(sink.bodies);
    const rawP50 = median(rawMs);
    const rawPausedP50 = median(rawPausedMs);
    const rows: string[][] = [];
    const perPath: Record<string, Record<string, number>> = {};
    for (const [transport, key] of [['ws', 'WebSocket binary'], ['http', 'HTTP binary']] as const) {
      const all = decompose(spans, transport).slice(-REQUESTS); // the measured ones, after the warm-up
      const p50: Record<string, number> = {};
      for (const s of STAGES) {
        if (s === 'client latency') p50[s] = median(client[transport]!);
        else if (s === 'outside process') p50[s] = median(client[transport]!.map((c, i) => c - (all[i]?.['in process (request span)'] ?? Number.NaN)).filter((x) => !Number.isNaN(x)));
        else p50[s] = median(all.map((r) => r[s]));
      }
      perPath[key] = p50;
      rows.push([key, ...STAGES.map((s) => p50[s]!.toFixed(3))]);
    }
    printTable(
      `${executor} executor: p50 per stage, ms (raw session.run in this process p50 ${rawP50.toFixed(3)} ms back to back, ${rawPausedP50.toFixed(3)} ms after a 2 ms sleep; spans of ${REQUESTS} requests per path)`,
      ['path', ...STAGES],
      rows,
    );
    // p50s of stages do not add up to the p50 of their sum; "own" is taken per request.
    for (const [key, p] of Object.entries(perPath)) console.log(`${executor} ${key}: in process p50 ${p['in process (request span)']!.toFixed(3)} ms, Perch's own (request span - session.run, per request) p50 ${p['own (in process - run)']!.toFixed(3)} ms; outside the process p50 ${p['outside process']!.toFixed(3)} ms`);
    results[executor] = { rawP50, rawPausedP50, perPath };
  }
  saveSection('decompose', { requests: REQUESTS, loadavg1m: Number(load), ...results }, 'node dist/bench/decompose.js');
}

await main();
