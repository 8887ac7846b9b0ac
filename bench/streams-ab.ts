// Issue 20: paired rounds of one fixed stream level against several servers, to show a change of
// the sequence batcher's policy (or any other) beside Perch as shipped and the minimal sequence
// server (bench/lib/minimal-streams-server.ts). All servers are alive at once and measured one at
// a time, the order reversed every other round, each round with the same load generator as
// bench/streams.ts; per server and round: p50/p99, streams behind, CPU per chunk of its main
// thread, busiest other thread and whole process, the average batch so far, the 1-minute load.
//   node dist/bench/streams-ab.js [--streams 60] [--rounds 4] [--seconds 4]
import { spawn } from 'node:child_process';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { MODEL_FILES, REPO_ROOT, SHIPPED_MODELS } from '../test/helpers/paths.js';
import { numberFlag } from './lib/args.js';
import { buildRepository, MINIMAL_STREAMS_SERVER, startPerch, type PerchServer } from './lib/perch-server.js';
import { threadCpuMs, threadSplit } from './lib/proc-cpu.js';
import { machine, saveSection } from './lib/results.js';
import { median, printTable } from './lib/stats.js';
import type { StreamLoadResult } from './lib/stream-load.js';

const STREAMS = numberFlag('streams', 60);
const ROUNDS = numberFlag('rounds', 4);
const SECONDS = numberFlag('seconds', 4);
const GENERATOR = join(REPO_ROOT, 'dist', 'bench', 'streams.js');

interface Server {
  name: string;
  start: () => Promise<PerchServer>;
  /** Items and batches run so far. */
  batches: (s: PerchServer) => Promise<{ items: number; batches: number }>;
}

const perchBatches = async (s: PerchServer) => ({
  items: await s.metric('perch_inference_count_total', { model: 'silero-vad' }),
  batches: await s.metric('perch_inference_exec_count_total', { model: 'silero-vad' }),
});

const SERVERS: Server[] = [
  { name: 'perch (shipped)', start: () => startPerch({ repository: SHIPPED_MODELS }), batches: perchBatches },
  {
    name: 'perch, maxQueueDelayMs 0',
    start: () => startPerch({
      repository: buildRepository(['silero-vad'], (_m, c) => ((c.batching as Record<string, unknown>).maxQueueDelayMs = 0)), ownRepository: true,
    }),
    batches: perchBatches,
  },
  {
    name: 'minimal',
    start: () => startPerch({ repository: buildRepository([]), ownRepository: true, command: [MINIMAL_STREAMS_SERVER, MODEL_FILES.sileroVad16k] }),
    batches: async (s) => (await (await fetch(`${s.baseUrl}/stats`)).json()) as { items: number; batches: number },
  },
];

function generate(url: string): Promise<StreamLoadResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [GENERATOR, '--generate', url, String(STREAMS), String(SECONDS), 'binary'], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.once('exit', (code) => (code === 0 ? resolve(JSON.parse(out.trim()) as StreamLoadResult) : reject(new Error(`generator exited ${code}`))));
  });
}

interface Round {
  p50: number;
  p99: number;
  behind: number;
  mainUs: number;
  busiestUs: number;
  totalUs: number;
  averageBatch: number;
  load: number;
}

async function main(): Promise<void> {
  const m = machine();
  console.log(`# streams A/B: ${STREAMS} streams, ${ROUNDS} rounds x ${SECONDS} s (+2 s warm-up) per server; ${m.nproc} cpus, load ${m.loadavg1mAtStart}`);
  const live: PerchServer[] = [];
  const rounds = new Map<string, Round[]>(SERVERS.map((s) => [s.name, []]));
  try {
    for (const s of SERVERS) live.push(await s.start());
    for (let r = 0; r < ROUNDS; r++) {
      const order = SERVERS.map((s, i) => [s, live[i]!] as const);
      if (r % 2 === 1) order.reverse();
      for (const [s, server] of order) {
        const before = threadCpuMs(server.pid);
        const x = await generate(server.wsUrl);
        const cpu = threadSplit(server.pid, before, threadCpuMs(server.pid));
        const sent = x.chunks * (1 + 2 / SECONDS); // the warm-up's chunks too
        const b = await s.batches(server);
        const row: Round = {
          p50: x.p50, p99: x.p99, behind: x.behind, load: loadavg()[0] ?? 0,
          mainUs: (cpu.main * 1000) / sent, busiestUs: (cpu.busiestOther * 1000) / sent, totalUs: (cpu.total * 1000) / sent, averageBatch: b.items / b.batches,
        };
        rounds.get(s.name)!.push(row);
        console.log(`round ${r + 1}/${ROUNDS} ${s.name}: p50 ${row.p50.toFixed(2)} p99 ${row.p99.toFixed(2)} ms, behind ${row.behind}, µs/chunk main ${row.mainUs.toFixed(0)} busiest ${row.busiestUs.toFixed(0)} total ${row.totalUs.toFixed(0)}, average batch so far ${row.averageBatch.toFixed(1)}, load ${row.load.toFixed(1)}`);
      }
    }
  } finally {
    for (const s of live) await s.stop();
  }
  const med = (name: string, k: keyof Round) => median(rounds.get(name)!.map((r) => r[k]));
  printTable(`${STREAMS} real-time VAD streams, medians of ${ROUNDS} paired rounds`, ['server', 'p50 ms', 'p99 ms', 'behind', 'µs/chunk: main', 'busiest other thread', 'total', 'average batch'],
    SERVERS.map((s) => [s.name, med(s.name, 'p50').toFixed(2), med(s.name, 'p99').toFixed(2), String(med(s.name, 'behind')), med(s.name, 'mainUs').toFixed(0), med(s.name, 'busiestUs').toFixed(0), med(s.name, 'totalUs').toFixed(0), med(s.name, 'averageBatch').toFixed(1)]));
  saveSection('streamsAb', { streams: STREAMS, rounds: Object.fromEntries(rounds) }, 'node dist/bench/streams-ab.js');
}

await main();
