// Overhead at concurrency 1 (issue 2, "Benchmark"): one client, one request at a time, on the
// PP-OCR direction classifier (x FP32 [1,3,48,192]), Perch in its own process vs a plain
// session.run in this process with the same session options. Raw and Perch phases alternate
// round by round (never at the same time), and the figures are medians over rounds.
// Headline: WebSocket + binary tensors, default 'worker' executor, p50 Perch / raw <= 1.15.
// Also: WS JSON, HTTP binary, HTTP JSON, and the same four with session.executor 'inline'; and
// with the default executor, gRPC ModelInfer (raw contents) over TCP and over a Unix socket, and
// WS/HTTP binary over a Unix socket (server.grpcPort, server.socketPath, server.grpcSocketPath).
// Traces: the worker executor again with OpenTelemetry traces on (telemetry.traces.endpoint, every
// request sampled) exporting to a sink that discards, beside the same with traces unset (the
// 'worker' rows), over WS and HTTP binary (docs/observability.md, "no measurable cost when off").
// Issue 20's anchor: the same WS and HTTP binary requests to a hand-written minimal server in its
// own process (bench/lib/minimal-server.ts: parse the header, run the session on a worker thread
// or on its main thread, answer), so Perch / minimal says what is Perch's and what the host's.
// GC: around every Perch phase, its main thread's garbage collections from its own /metrics (the
// perch_nodejs_gc_duration_seconds histogram, kept by prom-client's default metrics): full
// (major) collections per 1000 requests and GC ms per request, medians of the rounds; a process
// that falls into back-to-back full collections pays them in every request (docs/benchmarks.md).
// Run: node dist/bench/overhead.js   (PERCH_BENCH_ROUNDS, PERCH_BENCH_REQUESTS to change the size)
import type ort from 'onnxruntime-node';
import { fromOrtResults } from '../runtime/sessions/ort-session.js';
import type { Tensor } from '../runtime/tensor/tensor.js';
import { clsInput } from '../test/helpers/models.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SHIPPED_MODELS } from '../test/helpers/paths.js';
import {
  answerOutputs, BenchHttp, BenchWs, httpBinaryBody, httpJsonBody, wsBinaryFrame, wsJsonFrame, type Answer,
} from './lib/clients.js';
import { BenchGrpc, grpcRequest } from './lib/grpc-client.js';
import { buildRepository, ECHO_SERVER, MINIMAL_SERVER, startPerch, withExecutor, type PerchServer } from './lib/perch-server.js';
import { startOtlpSink } from './lib/otlp-sink.js';
import { openRaw, runRaw } from './lib/raw-ort.js';
import { machine, saveSection } from './lib/results.js';
import { latencySummary, median, ms, printTable, ratio, spread } from './lib/stats.js';

const MODEL = 'pp-ocr-cls';
const MODEL_FILE = join(SHIPPED_MODELS, MODEL, '1', 'model.onnx');
const ROUNDS = Number(process.env.PERCH_BENCH_ROUNDS ?? 5);
const REQUESTS = Number(process.env.PERCH_BENCH_REQUESTS ?? 300); // per phase
const WARMUP = 100;
const DISTINCT_INPUTS = 8;
const TARGET = 1.15;
/**
 * Issue 20: what Perch itself adds over the transport floor (p50 - raw p50 - floor p50), default
 * (worker) executor, at most (ms).
 */
const OWN_TARGETS: Partial<Record<Transport, number>> = { 'ws-binary': 0.10, 'http-binary': 0.15 };

type Transport = 'ws-binary' | 'ws-json' | 'http-binary' | 'http-json' | 'grpc' | 'grpc-unix' | 'ws-binary-unix' | 'http-binary-unix';
const TRANSPORTS: Transport[] = ['ws-binary', 'ws-json', 'http-binary', 'http-json'];
/** Measured on the default (worker) executor only. */
const LOCAL_TRANSPORTS: Transport[] = ['grpc', 'grpc-unix', 'ws-binary-unix', 'http-binary-unix'];
const EXECUTORS = ['worker', 'inline'] as const;
/**
 * 'echo' is the transport floor: same frames to a server that does no inference (bench/lib/echo-server.ts).
 * 'minimal' / 'minimal-main': the hand-written minimal server, session on a worker thread / on its main thread.
 */
type ExecutorKind = (typeof EXECUTORS)[number] | 'echo' | 'worker+traces' | 'minimal' | 'minimal-main';
/** The minimal servers speak binary tensors only. */
const MINIMAL_TRANSPORTS: Transport[] = ['ws-binary', 'http-binary'];
const isMinimal = (e: ExecutorKind) => e === 'minimal' || e === 'minimal-main';
/** The paths measured with traces on. */
const TRACED_TRANSPORTS: Transport[] = ['ws-binary', 'http-binary'];
const isJson = (t: Transport) => t.endsWith('json');

interface Variant {
  executor: ExecutorKind;
  transport: Transport;
  /** Sends request k (of the distinct inputs) and resolves with its answer. */
  call: (k: number) => Promise<Answer>;
  p50s: number[];
  p99s: number[];
  ratios: number[];
  /** Per round: p50 - raw p50 - floor p50 of that round (paired; see main). */
  owns: number[];
  /** Perch's processes: the server, for its GC counts; absent for the minimal and echo servers. */
  server?: PerchServer;
  /** Per round: full collections per 1000 requests, and GC ms per request (all kinds). */
  majorPerK: number[];
  gcMsPerRequest: number[];
}

const GC_METRIC = 'perch_nodejs_gc_duration_seconds';

/** The main thread's GC so far: full collections, and seconds in every kind. */
async function gcSoFar(server: PerchServer): Promise<{ major: number; seconds: number }> {
  const [major, seconds] = await Promise.all([server.metric(`${GC_METRIC}_count`, { kind: 'major' }), server.metric(`${GC_METRIC}_sum`)]);
  return { major, seconds };
}

async function timeSerial(n: number, call: (k: number) => Promise<unknown>): Promise<number[]> {
  const lat: number[] = new Array<number>(n);
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await call(i % DISTINCT_INPUTS);
    lat[i] = performance.now() - t0;
  }
  return lat;
}

interface Sockets {
  http: string;
  grpc: string;
}

async function makeVariants(server: PerchServer, executor: ExecutorKind, inputs: Tensor[][], sockets: Sockets | null): Promise<{ variants: Variant[]; close: () => Promise<void> }> {
  const wsBin = await BenchWs.connect(server.wsUrl);
  const wsJson = await BenchWs.connect(server.wsUrl);
  const http = new BenchHttp(server.baseUrl, 1);
  const binFrames = inputs.map((t, k) => wsBinaryFrame(`b${k}`, MODEL, t));
  const jsonFrames = inputs.map((t, k) => wsJsonFrame(`j${k}`, MODEL, t));
  const httpBin = inputs.map(httpBinaryBody);
  const httpJson = inputs.map(httpJsonBody);
  const calls: Partial<Record<Transport, (k: number) => Promise<Answer>>> = {
    'ws-binary': (k) => wsBin.send(`b${k}`, binFrames[k] as Buffer),
    'ws-json': (k) => wsJson.send(`j${k}`, jsonFrames[k] as string),
    'http-binary': (k) => http.infer(MODEL, httpBin[k]!),
    'http-json': (k) => http.infer(MODEL, httpJson[k]!),
  };
  const perch = executor === 'echo' || isMinimal(executor) ? {} : { server };
  const variants: Variant[] = TRANSPORTS.map((transport) => ({ executor, transport, call: calls[transport]!, p50s: [], p99s: [], ratios: [], owns: [], ...perch, majorPerK: [], gcMsPerRequest: [] }));
  if (!sockets || server.grpcPort === null) {
    return {
      variants,
      close: async () => {
        http.close();
        await Promise.all([wsBin.close(), wsJson.close()]);
      },
    };
  }
  const grpcTcp = new BenchGrpc(`127.0.0.1:${server.grpcPort}`);
  const grpcUnix = new BenchGrpc(`unix:${sockets.grpc}`);
  const wsUnix = await BenchWs.connect(`ws+unix://${sockets.http}:/v1/ws`);
  const httpUnix = new BenchHttp('http://localhost', 1, sockets.http);
  const grpcReqs = inputs.map((t) => grpcRequest(MODEL, t));
  const local: Partial<Record<Transport, (k: number) => Promise<Answer>>> = {
    grpc: (k) => grpcTcp.infer(grpcReqs[k]!),
    'grpc-unix': (k) => grpcUnix.infer(grpcReqs[k]!),
    'ws-binary-unix': (k) => wsUnix.send(`b${k}`, binFrames[k] as Buffer),
    'http-binary-unix': (k) => httpUnix.infer(MODEL, httpBin[k]!),
  };
  for (const transport of LOCAL_TRANSPORTS) variants.push({ executor, transport, call: local[transport]!, p50s: [], p99s: [], ratios: [], owns: [], ...perch, majorPerK: [], gcMsPerRequest: [] });
  return {
    variants,
    close: async () => {
      http.close();
      httpUnix.close();
      grpcTcp.close();
      grpcUnix.close();
      await Promise.all([wsBin.close(), wsJson.close(), wsUnix.close()]);
    },
  };
}

function maxAbsDiff(a: Tensor, b: Tensor): number {
  let d = 0;
  const x = a.data as Float32Array;
  const y = b.data as Float32Array;
  if (x.length !== y.length) return Infinity;
  for (let i = 0; i < x.length; i++) d = Math.max(d, Math.abs((x[i] as number) - (y[i] as number)));
  return d;
}

async function main(): Promise<void> {
  const m = machine();
  console.log(`# overhead benchmark: ${MODEL} [1,3,48,192], concurrency 1; ${m.nproc} cpus (${m.cpuModel}), node ${m.node}, onnxruntime-node ${m.onnxruntimeNode}, load ${m.loadavg1mAtStart}`);
  console.log(`# ${ROUNDS} rounds x ${REQUESTS} requests per phase, raw and Perch phases alternating; medians over rounds`);

  const inputs = Array.from({ length: DISTINCT_INPUTS }, (_, k) => clsInput(1000 + k));
  const session: ort.InferenceSession = await openRaw(MODEL_FILE);
  const rawCall = (k: number) => runRaw(session, inputs[k]!);
  const expected = await Promise.all(inputs.map(async (t) => fromOrtResults(await runRaw(session, t))));

  const servers: PerchServer[] = [];
  const closers: Array<() => Promise<void>> = [];
  const variants: Variant[] = [];
  const socketDir = mkdtempSync(join(tmpdir(), 'perch-bench-sock-'));
  const sockets: Sockets = { http: join(socketDir, 'http.sock'), grpc: join(socketDir, 'grpc.sock') };
  const sink = await startOtlpSink();
  closers.push(() => sink.close());
  try {
    for (const executor of [...EXECUTORS, 'worker+traces', 'minimal', 'minimal-main', 'echo'] as const) {
      const local = executor === 'worker';
      const server = executor === 'echo'
        ? await startPerch({ repository: buildRepository([]), ownRepository: true, command: [ECHO_SERVER] })
        : isMinimal(executor)
          ? await startPerch({ repository: buildRepository([]), ownRepository: true, command: [MINIMAL_SERVER, MODEL_FILE, executor === 'minimal' ? 'worker' : 'main', MODEL] })
          : executor === 'worker+traces'
          ? await startPerch({ repository: buildRepository([MODEL], withExecutor('worker')), ownRepository: true, config: { telemetry: { traces: { endpoint: sink.url, sampleRatio: 1 } } } })
          : await startPerch({
            repository: buildRepository([MODEL], withExecutor(executor)), ownRepository: true,
            ...(local ? { config: { server: { grpcPort: 0, socketPath: sockets.http, grpcSocketPath: sockets.grpc } } } : {}),
          });
      servers.push(server);
      const made = await makeVariants(server, executor, inputs, local ? sockets : null);
      closers.push(made.close);
      const only = executor === 'worker+traces' ? TRACED_TRANSPORTS : isMinimal(executor) ? MINIMAL_TRANSPORTS : null;
      variants.push(...(only ? made.variants.filter((v) => only.includes(v.transport)) : made.variants));
    }

    // Warm up everything, and check that every path answers what a direct session.run answers.
    await timeSerial(WARMUP, rawCall);
    for (const v of variants) {
      await timeSerial(isJson(v.transport) ? WARMUP / 4 : WARMUP, v.call);
      if (v.executor === 'echo') continue;
      for (let k = 0; k < DISTINCT_INPUTS; k++) {
        const got = answerOutputs(await v.call(k))[0];
        const want = expected[k]?.[0];
        if (!got || !want || maxAbsDiff(got, want) > 1e-5) throw new Error(`${v.executor}/${v.transport}: answer differs from session.run`);
      }
    }

    const rawP50s: number[] = [];
    const rawP99s: number[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      // Raw before and after the Perch phases of the round; its round figure uses both.
      const before = await timeSerial(REQUESTS, rawCall);
      const perch: number[][] = [];
      // JSON paths are 5-10x slower: fewer requests keep the run short (p99 is then coarser).
      for (const v of variants) {
        const n = isJson(v.transport) ? Math.ceil(REQUESTS / 3) : REQUESTS;
        const gc0 = v.server ? await gcSoFar(v.server) : null;
        perch.push(await timeSerial(n, v.call));
        if (v.server && gc0) {
          const gc1 = await gcSoFar(v.server);
          v.majorPerK.push(((gc1.major - gc0.major) / n) * 1000);
          v.gcMsPerRequest.push(((gc1.seconds - gc0.seconds) * 1000) / n);
        }
      }
      const after = await timeSerial(REQUESTS, rawCall);
      const raw = latencySummary([...before, ...after]);
      rawP50s.push(raw.p50);
      rawP99s.push(raw.p99);
      variants.forEach((v, i) => {
        const s = latencySummary(perch[i]!);
        v.p50s.push(s.p50);
        v.p99s.push(s.p99);
        v.ratios.push(s.p50 / raw.p50);
      });
      // Perch's own time, paired within the round: the three p50s it is the difference of are
      // taken minutes apart at most, so drift of the machine between rounds cancels. (Medians
      // of each over the rounds, subtracted, moved by 0.3-0.4 ms on the JSON paths from one run
      // to the next while Perch's own p50 did not move: docs/benchmarks.md, issue 20.)
      for (const v of variants) {
        const floorV = variants.find((e) => e.executor === 'echo' && e.transport === v.transport);
        if (v.executor !== 'echo' && floorV) v.owns.push(v.p50s.at(-1)! - raw.p50 - floorV.p50s.at(-1)!);
      }
      const head = variants[0]!; // ws-binary, worker executor
      console.log(`round ${r + 1}/${ROUNDS}: raw p50 ${ms(raw.p50)} ms, perch ws-binary (worker) p50 ${ms(head.p50s.at(-1)!)} ms, ratio ${ratio(head.ratios.at(-1)!)}`);
    }

    const raw = { p50: median(rawP50s), p99: median(rawP99s) };
    // No echo floor for gRPC and the Unix sockets: the echo server speaks TCP HTTP/WS only.
    const rows = variants.map((v) => ({
      executor: v.executor,
      transport: v.transport,
      p50Ms: median(v.p50s),
      p99Ms: median(v.p99s),
      ratioP50: median(v.ratios),
      ratioRange: spread(v.ratios),
      addedP50Ms: median(v.p50s) - raw.p50,
      /** What Perch adds beyond inference and the bare transport: p50 - raw p50 - echo p50, median of the rounds' (paired) values. */
      perchOwnMs: v.owns.length > 0 ? median(v.owns) : Number.NaN,
      perchOwnRange: v.owns.length > 0 ? `${ms(Math.min(...v.owns))} to ${ms(Math.max(...v.owns))}` : '-',
    }));
    printTable(
      `Overhead, concurrency 1, ${MODEL} (latency in ms, medians over ${ROUNDS} rounds of ${REQUESTS})`,
      ['path', 'executor', 'p50', 'p99', 'p50 - raw', 'minus floor', 'minus floor, rounds', 'p50 / raw', 'per-round ratios'],
      [
        ['raw session.run (in process)', '-', ms(raw.p50), ms(raw.p99), '-', '-', '-', '1.00', '-'],
        ...rows.map((r) => r.executor === 'echo'
          ? [`floor ${r.transport} (echo, no inference)`, '-', ms(r.p50Ms), ms(r.p99Ms), '-', '-', '-', '-', '-']
          : [`${isMinimal(r.executor) ? 'minimal' : 'perch'} ${r.transport}`, isMinimal(r.executor) ? (r.executor === 'minimal' ? 'worker' : 'main thread') : r.executor, ms(r.p50Ms), ms(r.p99Ms), ms(r.addedP50Ms), Number.isNaN(r.perchOwnMs) ? '-' : ms(r.perchOwnMs), r.perchOwnRange, ratio(r.ratioP50), r.ratioRange]),
      ],
    );
    console.log('# minus floor = p50 - raw p50 - floor p50 of the same transport, per round, median of the rounds: the time Perch itself adds (validation, queue, thread hop, copies, GC)');
    const gcRows = variants.filter((v) => v.majorPerK.length > 0);
    printTable(
      'Perch main thread GC per phase (its /metrics; medians of the rounds, per-round values in brackets)',
      ['path', 'executor', 'full GCs / 1000 requests', 'GC ms / request'],
      gcRows.map((v) => [`perch ${v.transport}`, v.executor, `${median(v.majorPerK).toFixed(1)} [${v.majorPerK.map((x) => x.toFixed(0)).join(' ')}]`, `${median(v.gcMsPerRequest).toFixed(3)} [${v.gcMsPerRequest.map((x) => x.toFixed(2)).join(' ')}]`]),
    );
    const p50Of = (executor: ExecutorKind, t: Transport) => rows.find((r) => r.executor === executor && r.transport === t)?.p50Ms ?? Number.NaN;
    const tracesCost = TRACED_TRANSPORTS.map((t) => ({ transport: t, off: p50Of('worker', t), on: p50Of('worker+traces', t) }));
    for (const c of tracesCost) {
      console.log(`traces ${c.transport}: off p50 ${ms(c.off)} ms (${ratio(c.off / raw.p50)} x raw), on p50 ${ms(c.on)} ms (${ratio(c.on / raw.p50)} x raw), on / off ${ratio(c.on / c.off)}`);
    }
    console.log(`# traces on: ${sink.posts} OTLP exports (${Math.round(sink.bytes / 1024)} KiB) reached the sink`);
    const headline = rows[0]!;
    const met = headline.ratioP50 <= TARGET;
    console.log(`\nheadline: perch ws-binary (worker) p50 / raw p50 = ${ratio(headline.ratioP50)} (target <= ${TARGET}): ${met ? 'MET' : 'NOT MET'}`);
    const ownTargets = Object.entries(OWN_TARGETS).map(([transport, max]) => {
      const r = rows.find((x) => x.executor === 'worker' && x.transport === transport)!;
      const ok = r.perchOwnMs <= max!;
      console.log(`issue 20: perch ${transport} (worker) minus floor = ${ms(r.perchOwnMs)} ms (target <= ${max} ms): ${ok ? 'MET' : 'NOT MET'}`);
      return { metric: `${transport} (worker) p50 - raw p50 - floor p50 (ms)`, max: max!, value: r.perchOwnMs, met: ok, issue: 20 };
    });
    // Issue 20's anchor, paired per round: Perch (worker executor) against the minimal server
    // with its session on a worker thread, and Perch inline against the minimal main-thread one.
    const anchors = MINIMAL_TRANSPORTS.flatMap((t) => ([['worker', 'minimal'], ['inline', 'minimal-main']] as const).map(([perchE, minE]) => {
      const p = variants.find((v) => v.executor === perchE && v.transport === t)!;
      const mn = variants.find((v) => v.executor === minE && v.transport === t)!;
      const ratios = p.p50s.map((x, i) => x / mn.p50s[i]!);
      const diffs = p.p50s.map((x, i) => x - mn.p50s[i]!);
      const a = { transport: t, executor: perchE, perchOverMinimal: median(ratios), perchOverMinimalRange: spread(ratios), perchMinusMinimalMs: median(diffs), minimalOverRaw: median(mn.ratios) };
      console.log(`issue 20 anchor: perch ${t} (${perchE}) / minimal (${minE === 'minimal' ? 'worker thread' : 'main thread'}) p50 = ${ratio(a.perchOverMinimal)} (rounds ${a.perchOverMinimalRange}), perch - minimal = ${ms(a.perchMinusMinimalMs)} ms; minimal / raw = ${ratio(a.minimalOverRaw)}, perch / raw = ${ratio(median(p.ratios))}`);
      return a;
    }));
    saveSection('overhead', {
      model: MODEL,
      input: '[1,3,48,192] FP32',
      rounds: ROUNDS,
      requestsPerPhase: REQUESTS,
      raw: { p50Ms: raw.p50, p99Ms: raw.p99, p50sMs: rawP50s },
      rows: rows.map((r, i) => ({ ...r, p50sMs: variants[i]!.p50s, ratios: variants[i]!.ratios, majorGcPer1000: variants[i]!.majorPerK, gcMsPerRequest: variants[i]!.gcMsPerRequest })),
      target: { metric: 'ws-binary (worker) p50 / raw p50', max: TARGET, value: headline.ratioP50, met },
      targets: ownTargets,
      traces: tracesCost,
      anchors,
    }, 'node dist/bench/overhead.js');
  } finally {
    for (const c of closers) await c();
    for (const s of servers) await s.stop();
    rmSync(socketDir, { recursive: true, force: true });
    await session.release();
  }
}

await main();
