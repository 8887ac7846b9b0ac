// Throughput at 64 concurrent closed-loop clients (issue 2, "Benchmark") on silero-vad used
// without state (zeros each time): input FP32 [1,576], state FP32 [2,1,128], sr INT64 16000.
// Perch (own process, shipped model.json: dynamic batching up to 64) over WebSocket with binary
// tensors (the copied model.json loses its `sequence` section, if any: stateless use), vs raw onnxruntime-node in this process at batch 1, 8, 16, 32, 64 (input stacked on
// axis 0, state on axis 1). Raw and Perch phases alternate, never at the same time; the figures
// are medians over rounds. The load generator shares the machine's cores with Perch (raw does
// not have to share): the headline runs it on a worker thread, and the table also shows the
// main-thread variant and 64 connections x 1 in flight.
// Targets: Perch >= 0.8 x raw at its best batch, >= 2.5 x raw at batch 1.
// Run: node dist/bench/throughput.js   (PERCH_BENCH_ROUNDS, PERCH_BENCH_PHASE_MS to change the size)
import type ort from 'onnxruntime-node';
import { buildRepository, startPerch, withoutSequence, type PerchServer } from './lib/perch-server.js';
import { procCpuMs } from './lib/proc-cpu.js';
import { openRaw, runRaw } from './lib/raw-ort.js';
import { machine, saveSection } from './lib/results.js';
import { latencySummary, median, ms, perSecond, printTable, ratio, spread } from './lib/stats.js';
import { runVadLoad, vadStatelessInputs, type VadLoadOptions, type VadLoadResult } from './lib/vad-load.js';
import { runVadLoadInWorker } from './lib/vad-load-worker.js';
import { join } from 'node:path';
import { SHIPPED_MODELS } from '../test/helpers/paths.js';

const MODEL = 'silero-vad';
const MODEL_FILE = join(SHIPPED_MODELS, MODEL, '1', 'model.onnx');
const ROUNDS = Number(process.env.PERCH_BENCH_ROUNDS ?? 3);
const PHASE_MS = Number(process.env.PERCH_BENCH_PHASE_MS ?? 3000);
const WARMUP_MS = 1000;
const RAW_PHASE_MS = Math.max(300, Math.round(PHASE_MS / 4));
const RAW_BATCHES = [1, 8, 16, 32, 64];
const CLIENTS = 64;
const TARGET_BEST = 0.8;
const TARGET_B1 = 2.5;

interface Scenario {
  key: string;
  label: string;
  connections: number;
  perConnection: number;
  loadgen: 'worker-thread' | 'main-thread';
}

// The first scenario is the headline.
const SCENARIOS: Scenario[] = [
  { key: '8x8-worker', label: '8 conns x 8 in flight, load gen on worker thread', connections: 8, perConnection: 8, loadgen: 'worker-thread' },
  { key: '8x8-main', label: '8 conns x 8 in flight, load gen on main thread', connections: 8, perConnection: 8, loadgen: 'main-thread' },
  { key: '64x1-worker', label: '64 conns x 1 in flight, load gen on worker thread', connections: 64, perConnection: 1, loadgen: 'worker-thread' },
];

interface PerchPhase {
  itemsPerSec: number;
  p50: number;
  p99: number;
  avgBatch: number;
  serverCpuPct: number;
  loadgenCpuPct: number;
}

async function rawPhase(session: ort.InferenceSession, batch: number): Promise<{ itemsPerSec: number; runMs: number }> {
  const inputs = vadStatelessInputs(42, batch);
  for (let i = 0; i < 20; i++) await runRaw(session, inputs);
  const lat: number[] = [];
  const start = performance.now();
  let now = start;
  while (now - start < RAW_PHASE_MS) {
    await runRaw(session, inputs);
    const t = performance.now();
    lat.push(t - now);
    now = t;
  }
  return { itemsPerSec: (batch * lat.length) / ((now - start) / 1000), runMs: median(lat) };
}

async function perchPhase(server: PerchServer, s: Scenario): Promise<PerchPhase> {
  const opts: VadLoadOptions = { wsUrl: server.wsUrl, model: MODEL, connections: s.connections, perConnection: s.perConnection, warmupMs: WARMUP_MS, durationMs: PHASE_MS };
  const labels = { model: MODEL };
  let before: Promise<[number, number, number]> | null = null;
  const onWindow = () => {
    before = Promise.all([server.metric('perch_inference_count_total', labels), server.metric('perch_inference_exec_count_total', labels), Promise.resolve(procCpuMs(server.pid))]);
  };
  const result: VadLoadResult = s.loadgen === 'worker-thread' ? await runVadLoadInWorker(opts, onWindow) : await runVadLoad(opts, onWindow);
  const cpuAfter = procCpuMs(server.pid);
  const [items0, execs0, cpu0] = await (before ?? Promise.resolve([0, 0, 0] as [number, number, number]));
  const [items1, execs1] = await Promise.all([server.metric('perch_inference_count_total', labels), server.metric('perch_inference_exec_count_total', labels)]);
  const lat = latencySummary(result.latencies);
  return {
    itemsPerSec: result.completed / (result.windowMs / 1000),
    p50: lat.p50,
    p99: lat.p99,
    avgBatch: (items1 - items0) / Math.max(1, execs1 - execs0),
    serverCpuPct: (100 * (cpuAfter - cpu0)) / result.windowMs,
    loadgenCpuPct: (100 * result.cpuMs) / result.windowMs,
  };
}

async function main(): Promise<void> {
  const m = machine();
  console.log(`# throughput benchmark: ${MODEL} stateless, ${CLIENTS} closed-loop clients; ${m.nproc} cpus (${m.cpuModel}), node ${m.node}, onnxruntime-node ${m.onnxruntimeNode}, load ${m.loadavg1mAtStart}`);
  console.log(`# ${ROUNDS} rounds; raw ${RAW_PHASE_MS} ms per batch size, Perch ${WARMUP_MS} ms warm-up + ${PHASE_MS} ms per scenario; medians over rounds`);
  console.log('# the load generator runs on the same 2 cores as Perch (raw onnxruntime needs no load generator)');

  const session = await openRaw(MODEL_FILE);
  const server = await startPerch({ repository: buildRepository(['silero-vad', 'pp-ocr-cls'], withoutSequence), ownRepository: true });
  const raw = new Map<number, number[]>(RAW_BATCHES.map((b) => [b, []]));
  const rawRunMs = new Map<number, number[]>(RAW_BATCHES.map((b) => [b, []]));
  const perch = new Map<string, PerchPhase[]>(SCENARIOS.map((s) => [s.key, []]));
  const bestRatios: number[] = [];
  const b1Ratios: number[] = [];
  try {
    for (let r = 0; r < ROUNDS; r++) {
      const roundRaw = new Map<number, number>();
      for (const b of RAW_BATCHES) {
        const x = await rawPhase(session, b);
        raw.get(b)!.push(x.itemsPerSec);
        rawRunMs.get(b)!.push(x.runMs);
        roundRaw.set(b, x.itemsPerSec);
      }
      for (const s of SCENARIOS) perch.get(s.key)!.push(await perchPhase(server, s));
      const head = perch.get(SCENARIOS[0]!.key)!.at(-1)!;
      const best = Math.max(...roundRaw.values());
      bestRatios.push(head.itemsPerSec / best);
      b1Ratios.push(head.itemsPerSec / roundRaw.get(1)!);
      console.log(`round ${r + 1}/${ROUNDS}: raw b1 ${perSecond(roundRaw.get(1)!)}/s, raw best ${perSecond(best)}/s, perch ${perSecond(head.itemsPerSec)}/s (avg batch ${head.avgBatch.toFixed(1)})`);
    }
    const rssAfterLoadKiB = server.rssKiB();

    const rawMed = RAW_BATCHES.map((b) => ({ batch: b, itemsPerSec: median(raw.get(b)!), runMs: median(rawRunMs.get(b)!) }));
    const rawBest = rawMed.reduce((a, b) => (b.itemsPerSec > a.itemsPerSec ? b : a));
    const rawB1 = rawMed[0]!;
    printTable(
      `Raw onnxruntime-node, ${MODEL} stateless, in process (medians over ${ROUNDS} rounds)`,
      ['batch', 'items/s', 'ms per run', 'x batch 1'],
      rawMed.map((x) => [String(x.batch), perSecond(x.itemsPerSec), ms(x.runMs), ratio(x.itemsPerSec / rawB1.itemsPerSec)]),
    );
    const rows = SCENARIOS.map((s) => {
      const ph = perch.get(s.key)!;
      const med = (f: (p: PerchPhase) => number) => median(ph.map(f));
      return {
        scenario: s.key,
        label: s.label,
        connections: s.connections,
        perConnection: s.perConnection,
        loadgen: s.loadgen,
        itemsPerSec: med((p) => p.itemsPerSec),
        p50Ms: med((p) => p.p50),
        p99Ms: med((p) => p.p99),
        avgBatch: med((p) => p.avgBatch),
        serverCpuPct: med((p) => p.serverCpuPct),
        loadgenCpuPct: med((p) => p.loadgenCpuPct),
        perRoundItemsPerSec: ph.map((p) => p.itemsPerSec),
      };
    });
    printTable(
      `Perch, ${MODEL} stateless, ${CLIENTS} closed-loop clients over WebSocket, binary tensors (medians over ${ROUNDS} rounds)`,
      ['scenario', 'items/s', 'p50 ms', 'p99 ms', 'avg batch', '/ raw best', '/ raw b1', 'perch cpu', 'loadgen cpu'],
      rows.map((x) => [
        x.label, perSecond(x.itemsPerSec), ms(x.p50Ms), ms(x.p99Ms), x.avgBatch.toFixed(1),
        ratio(x.itemsPerSec / rawBest.itemsPerSec), ratio(x.itemsPerSec / rawB1.itemsPerSec), `${x.serverCpuPct.toFixed(0)}%`, `${x.loadgenCpuPct.toFixed(0)}%`,
      ]),
    );
    console.log(`# raw best is batch ${rawBest.batch} (${perSecond(rawBest.itemsPerSec)}/s); cpu: % of one core over the window (200% = both cores)`);
    const head = rows[0]!;
    const vsBest = median(bestRatios);
    const vsB1 = median(b1Ratios);
    const metBest = vsBest >= TARGET_BEST;
    const metB1 = vsB1 >= TARGET_B1;
    console.log(`\nheadline (${head.label}): perch / raw best = ${ratio(vsBest)} (per round ${spread(bestRatios)}; target >= ${TARGET_BEST}): ${metBest ? 'MET' : 'NOT MET'}`);
    console.log(`headline: perch / raw batch 1 = ${ratio(vsB1)} (per round ${spread(b1Ratios)}; target >= ${TARGET_B1}): ${metB1 ? 'MET' : 'NOT MET'}`);
    console.log(`perch RSS after the load: ${(rssAfterLoadKiB / 1024).toFixed(1)} MiB`);
    saveSection('throughput', {
      model: MODEL,
      clients: CLIENTS,
      rounds: ROUNDS,
      phaseMs: PHASE_MS,
      raw: rawMed,
      rawBest,
      perch: rows,
      headline: head.scenario,
      ratios: { vsRawBest: vsBest, vsRawBest_perRound: bestRatios, vsRawBatch1: vsB1, vsRawBatch1_perRound: b1Ratios },
      targets: [
        { metric: 'perch / raw best batch', min: TARGET_BEST, value: vsBest, met: metBest },
        { metric: 'perch / raw batch 1', min: TARGET_B1, value: vsB1, met: metB1 },
      ],
      perchRssAfterLoadMiB: rssAfterLoadKiB / 1024,
    }, 'node dist/bench/throughput.js');
  } finally {
    await server.stop();
    await session.release();
  }
}

await main();
