// Issue 20: paired rounds of fixed stream levels against several servers, to show a change of
// the sequence batcher's policy (or any other) beside Perch as shipped, the minimal sequence
// server (bench/lib/minimal-streams-server.ts) and, with --against, another checkout's Perch (a
// built worktree of an older commit, with its own CLI and its own models/: whether Perch's code
// regressed, on today's host). All servers are alive at once and measured one at a time, the
// order reversed every other round, each round with the same load generator as bench/streams.ts;
// per server and round: p50/p99, streams behind, CPU per chunk of its main thread, busiest other
// thread and whole process, the round's average batch, the intake's parks, the 1-minute load.
//   node dist/bench/streams-ab.js [--streams 150,200] [--rounds 4] [--seconds 4]
//     [--sides shipped,delay0,greedy,minimal,againstnpm] [--against <checkout>] [--node-args '<flags>'] [--env 'K=V ...'] [--alloc [--alloc-top N]]
//     [--cpu [--cpu-top N] [--cpu-interval µs]]
// --alloc: every server also loads bench/lib/alloc-probe.ts, and each round adds what its main
// thread allocated per chunk (V8's sampling heap profiler, collected objects included) and its
// GC events per 1,000 chunks (--alloc-top N: and the N functions that allocated most, per chunk); the profiler costs time, so latencies of such a run are not the
// shipped ones (docs/benchmarks.md, "Stream chunks on the main thread").
// --cpu: every server loads bench/lib/cpu-probe.ts instead, which runs V8's CPU profiler on its
// main thread for each measured round (a sample every --cpu-interval µs, 100 unless given); after
// each level the benchmark prints, per server, the sampled µs per chunk of the --cpu-top functions
// (20 unless given) by self time and of the files on the stack, summed over the rounds. The
// sampled time counts the thread waiting for a core (the CPU columns do not), and the profiler
// costs time too: compare the shares, and the two servers in the same run.
// At the end, each side's main-thread µs per chunk fitted over all its rounds as a + b / average
// batch: on a loaded host a side that falls behind batches more and spends less per chunk, and
// the fit compares sides at the same batch size (docs/benchmarks.md, "Stream chunks on the main thread").
// Sides: shipped; delay0 (maxQueueDelayMs 0); greedy (delay 0 and no preferred sizes: a free
// session takes everything waiting and nothing is handed ahead below maxBatchSize, the minimal
// server's policy); nointake (server.maxEventLoopDelayMs 10 s: the intake parks nobody for lag);
// npmstart (npm start's malloc environment and node flags); atload (both silero-vad sessions
// opened at load); flags (npm start's environment and flags plus --node-args, e.g.
// '--max-semi-space-size=4', and --env, e.g. 'MALLOC_MMAP_THRESHOLD_=4096': a V8 or glibc setting
// weighed against npmstart); minimal; against (needs --against); againstnpm (the --against
// checkout with npm start's environment and flags).
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { MODEL_FILES, REPO_ROOT, SHIPPED_MODELS } from '../test/helpers/paths.js';
import { flag, numberFlag } from './lib/args.js';
import { buildRepository, MINIMAL_STREAMS_SERVER, NPM_START_ENV, NPM_START_NODE_ARGS, startPerch, type PerchServer } from './lib/perch-server.js';
import { threadCpuMs, threadSplit } from './lib/proc-cpu.js';
import { machine, saveSection } from './lib/results.js';
import { median, printTable } from './lib/stats.js';
import type { StreamLoadResult } from './lib/stream-load.js';
import type { AllocReport } from './lib/alloc-probe.js';
import type { CpuReport } from './lib/cpu-probe.js';

const LEVELS = (flag('streams') ?? '150,200').split(',').map((v) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new Error(`--streams takes stream counts (60 or 100,150), not '${v}'`);
  return n;
});
const ROUNDS = numberFlag('rounds', 4);
const SECONDS = numberFlag('seconds', 4);
const AGAINST = flag('against');
const EXTRA_NODE_ARGS = (flag('node-args') ?? '').split(/\s+/).filter(Boolean);
const EXTRA_ENV: Record<string, string> = Object.fromEntries((flag('env') ?? '').split(/\s+/).filter(Boolean).map((kv) => {
  const at = kv.indexOf('=');
  if (at < 1) throw new Error(`--env takes NAME=value pairs, not '${kv}'`);
  return [kv.slice(0, at), kv.slice(at + 1)];
}));
const GENERATOR = join(REPO_ROOT, 'dist', 'bench', 'streams.js');
const ALLOC = process.argv.includes('--alloc');
const ALLOC_TOP = ALLOC ? numberFlag('alloc-top', 0) : 0;
const OWN_NODE_OPTIONS = process.env.NODE_OPTIONS ?? '';
const ALLOC_PROBE = join(REPO_ROOT, 'dist', 'bench', 'lib', 'alloc-probe.js');
const CPU = process.argv.includes('--cpu');
const CPU_TOP = CPU ? numberFlag('cpu-top', 20) : 0;
const CPU_INTERVAL = CPU ? numberFlag('cpu-interval', 100) : 0;
const CPU_PROBE = join(REPO_ROOT, 'dist', 'bench', 'lib', 'cpu-probe.js');
if (CPU && ALLOC) throw new Error('--cpu and --alloc each run a profiler on the main thread: one at a time');

interface Server {
  name: string;
  start: () => Promise<PerchServer>;
  /** Items and batches run so far. */
  batches: (s: PerchServer) => Promise<{ items: number; batches: number; parks?: number }>;
}

const perchBatches = async (s: PerchServer) => ({
  items: await s.metric('perch_inference_count_total', { model: 'silero-vad' }),
  batches: await s.metric('perch_inference_exec_count_total', { model: 'silero-vad' }),
  // Connections the intake stopped reading (docs/reliability.md; 0 where a checkout has no intake).
  parks: await s.metric('perch_intake_parks_total'),
});

/**
 * Another checkout's Perch: its CLI (dist/bin/perch.js, or dist/runtime/cli.js before issue 15)
 * and its models/; with npmStart, run as npm start runs it (this checkout's NPM_START_ENV and
 * NPM_START_NODE_ARGS), to weigh a change against the same environment.
 */
function againstServer(dir: string, npmStart = false): Server {
  const root = resolve(dir);
  const cli = [join(root, 'dist', 'bin', 'perch.js'), join(root, 'dist', 'runtime', 'cli.js')].find((f) => existsSync(f));
  if (!cli) throw new Error(`--against ${dir}: no dist/bin/perch.js or dist/runtime/cli.js (build that checkout first)`);
  return {
    name: `perch at ${basename(root)}${npmStart ? ", npm start's env and flags" : ''}`,
    start: () => startPerch({ repository: join(root, 'models'), command: [cli, 'serve'], ...(npmStart ? { env: NPM_START_ENV, nodeArgs: NPM_START_NODE_ARGS } : {}) }),
    batches: perchBatches,
  };
}

const SIDES: Record<string, () => Server> = {
  shipped: () => ({ name: 'perch (shipped)', start: () => startPerch({ repository: SHIPPED_MODELS }), batches: perchBatches }),
  delay0: () => ({
    name: 'perch, maxQueueDelayMs 0',
    start: () => startPerch({
      repository: buildRepository(['silero-vad'], (_m, c) => ((c.batching as Record<string, unknown>).maxQueueDelayMs = 0)), ownRepository: true,
    }),
    batches: perchBatches,
  }),
  greedy: () => ({
    name: 'perch, delay 0, no preferred sizes',
    start: () => startPerch({
      repository: buildRepository(['silero-vad'], (_m, c) => Object.assign(c.batching as Record<string, unknown>, { maxQueueDelayMs: 0, preferredBatchSizes: [] })), ownRepository: true,
    }),
    batches: perchBatches,
  }),
  nointake: () => ({
    name: 'perch, maxEventLoopDelayMs 10000',
    start: () => startPerch({ repository: SHIPPED_MODELS, config: { server: { maxEventLoopDelayMs: 10_000 } } }),
    batches: perchBatches,
  }),
  npmstart: () => ({
    name: "perch, npm start's env and flags",
    start: () => startPerch({ repository: SHIPPED_MODELS, env: NPM_START_ENV, nodeArgs: NPM_START_NODE_ARGS }),
    batches: perchBatches,
  }),
  flags: () => {
    const extraEnv = Object.entries(EXTRA_ENV).map(([k, v]) => `${k}=${v}`);
    if (EXTRA_NODE_ARGS.length === 0 && extraEnv.length === 0) throw new Error("the side 'flags' needs --node-args '<node flags>' or --env 'NAME=value'");
    return {
      name: `perch, npm start + ${[...extraEnv, ...EXTRA_NODE_ARGS].join(' ')}`,
      start: () => startPerch({ repository: SHIPPED_MODELS, env: { ...NPM_START_ENV, ...EXTRA_ENV }, nodeArgs: [...NPM_START_NODE_ARGS, ...EXTRA_NODE_ARGS] }),
      batches: perchBatches,
    };
  },
  atload: () => ({
    name: 'perch, both sessions at load',
    start: () => startPerch({
      repository: buildRepository(['silero-vad'], (_m, c) => delete (c.session as Record<string, unknown>).startInstances), ownRepository: true,
    }),
    batches: perchBatches,
  }),
  minimal: () => ({
    name: 'minimal',
    start: () => startPerch({ repository: buildRepository([]), ownRepository: true, command: [MINIMAL_STREAMS_SERVER, MODEL_FILES.sileroVad16k] }),
    batches: async (s) => (await (await fetch(`${s.baseUrl}/stats`)).json()) as { items: number; batches: number },
  }),
};

function chooseSides(): Server[] {
  const keys = (flag('sides') ?? ['shipped', 'delay0', 'greedy', 'minimal', ...(AGAINST ? ['against'] : [])].join(',')).split(',');
  return keys.map((k) => {
    if (k === 'against' || k === 'againstnpm') {
      if (!AGAINST) throw new Error(`the side "${k}" needs --against <checkout>`);
      return againstServer(AGAINST, k === 'againstnpm');
    }
    const make = SIDES[k];
    if (!make) throw new Error(`unknown side '${k}' (one of ${[...Object.keys(SIDES), 'against', 'againstnpm'].join(', ')})`);
    return make();
  });
}

function generate(url: string, streams: number): Promise<StreamLoadResult> {
  return new Promise((resolve, reject) => {
    // The generator runs without the --alloc probe (NODE_OPTIONS as this process was given it).
    const child = spawn(process.execPath, [GENERATOR, '--generate', url, String(streams), String(SECONDS), 'binary'], { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, NODE_OPTIONS: OWN_NODE_OPTIONS } });
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
  /** Connections parked by the intake during the round (20 streams each). */
  parks: number;
  load: number;
  /** With --alloc: bytes the main thread allocated per chunk, and its minor / major GCs per 1,000 chunks. */
  allocBytes?: number;
  minorGcs?: number;
  majorGcs?: number;
}

/** With --alloc or --cpu: the server's probe report of the round (the probe writes it on the second SIGUSR2). */
async function probeReport<T>(dir: string, pid: number, kind: 'alloc' | 'cpu'): Promise<T> {
  const file = join(dir, `${kind}-${pid}.json`);
  for (let waited = 0; waited < 10_000; waited += 50) {
    if (existsSync(file)) {
      try {
        const r = JSON.parse(readFileSync(file, 'utf8')) as T;
        rmSync(file);
        return r;
      } catch {
        // still being written
      }
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`--${kind}: server ${pid} wrote no ${file} (is dist/bench/lib/${kind}-probe.js built?)`);
}

/** Least squares of y = a + b / x over [x, y] points: [points, a, b, residual sd] (NaN with fewer than 3). */
function fitPerBatch(points: Array<[number, number]>): [number, number, number, number] {
  const n = points.length;
  if (n < 3) return [n, NaN, NaN, NaN];
  const xs = points.map(([x]) => 1 / x);
  const ys = points.map(([, y]) => y);
  const mx = xs.reduce((t, v) => t + v, 0) / n;
  const my = ys.reduce((t, v) => t + v, 0) / n;
  const b = xs.reduce((t, v, i) => t + (v - mx) * ((ys[i] as number) - my), 0) / xs.reduce((t, v) => t + (v - mx) ** 2, 0);
  const a = my - b * mx;
  const sd = Math.sqrt(ys.reduce((t, y, i) => t + (y - a - b * (xs[i] as number)) ** 2, 0) / (n - 2));
  return [n, a, b, sd];
}

async function main(): Promise<void> {
  const m = machine();
  const servers = chooseSides();
  console.log(`# streams A/B: ${LEVELS.join(', ')} streams, ${ROUNDS} rounds x ${SECONDS} s (+2 s warm-up) per server and level; ${m.nproc} cpus, load ${m.loadavg1mAtStart}`);
  const allocDir = ALLOC ? mkdtempSync(join(tmpdir(), 'perch-bench-alloc-')) : null;
  if (allocDir) {
    // Every server started from here (and the generator, which is never signalled) loads the probe.
    process.env.NODE_OPTIONS = [process.env.NODE_OPTIONS, `--import=${ALLOC_PROBE}`].filter(Boolean).join(' ');
    process.env.PERCH_BENCH_ALLOC_DIR = allocDir;
  }
  const cpuDir = CPU ? mkdtempSync(join(tmpdir(), 'perch-bench-cpu-')) : null;
  if (cpuDir) {
    process.env.NODE_OPTIONS = [process.env.NODE_OPTIONS, `--import=${CPU_PROBE}`].filter(Boolean).join(' ');
    process.env.PERCH_BENCH_CPU_DIR = cpuDir;
    process.env.PERCH_BENCH_CPU_INTERVAL_US = String(CPU_INTERVAL);
  }
  // With --cpu: per level and server, sampled µs summed over the rounds by function and by file, and the chunks sent.
  const cpuSums = new Map<string, { chunks: number; sampled: number; idle: number; self: Map<string, number>; files: Map<string, number> }>();
  const live: PerchServer[] = [];
  const byLevel = new Map<number, Map<string, Round[]>>(LEVELS.map((l) => [l, new Map(servers.map((s) => [s.name, []]))]));
  try {
    for (const s of servers) live.push(await s.start());
    for (const streams of LEVELS) {
      const rounds = byLevel.get(streams)!;
      for (let r = 0; r < ROUNDS; r++) {
        const order = servers.map((s, i) => [s, live[i]!] as const);
        if (r % 2 === 1) order.reverse();
        for (const [s, server] of order) {
          const before = threadCpuMs(server.pid);
          const batchesBefore = await s.batches(server);
          const probing = allocDir ?? cpuDir;
          if (probing) process.kill(server.pid, 'SIGUSR2');
          const x = await generate(server.wsUrl, streams);
          const cpu = threadSplit(server.pid, before, threadCpuMs(server.pid));
          if (probing) process.kill(server.pid, 'SIGUSR2');
          const sent = x.chunks * (1 + 2 / SECONDS); // the warm-up's chunks too
          const b = await s.batches(server);
          const row: Round = {
            p50: x.p50, p99: x.p99, behind: x.behind, load: loadavg()[0] ?? 0,
            mainUs: (cpu.main * 1000) / sent, busiestUs: (cpu.busiestOther * 1000) / sent, totalUs: (cpu.total * 1000) / sent,
            averageBatch: (b.items - batchesBefore.items) / Math.max(1, b.batches - batchesBefore.batches),
            parks: (b.parks ?? 0) - (batchesBefore.parks ?? 0),
          };
          if (allocDir) {
            const a = await probeReport<AllocReport>(allocDir, server.pid, 'alloc');
            Object.assign(row, { allocBytes: a.bytes / sent, minorGcs: (a.gc.minor * 1000) / sent, majorGcs: (a.gc.major * 1000) / sent });
            if (ALLOC_TOP > 0) console.log(a.top.slice(0, ALLOC_TOP).map(([fn, b]) => `    ${(b / sent).toFixed(0).padStart(5)} B/chunk ${fn}`).join('\n'));
          }
          if (cpuDir) {
            const c = await probeReport<CpuReport>(cpuDir, server.pid, 'cpu');
            const sum = cpuSums.get(`${streams} ${s.name}`) ?? { chunks: 0, sampled: 0, idle: 0, self: new Map(), files: new Map() };
            cpuSums.set(`${streams} ${s.name}`, sum);
            sum.chunks += sent;
            sum.sampled += c.sampledUs;
            sum.idle += c.idleUs;
            for (const [fn, us] of c.top) sum.self.set(fn, (sum.self.get(fn) ?? 0) + us);
            for (const [file, us] of c.inclusiveByFile) sum.files.set(file, (sum.files.get(file) ?? 0) + us);
          }
          rounds.get(s.name)!.push(row);
          console.log(`${streams} streams, round ${r + 1}/${ROUNDS} ${s.name}: p50 ${row.p50.toFixed(2)} p99 ${row.p99.toFixed(2)} ms, behind ${row.behind}, µs/chunk main ${row.mainUs.toFixed(0)} busiest ${row.busiestUs.toFixed(0)} total ${row.totalUs.toFixed(0)}, average batch ${row.averageBatch.toFixed(1)}, parks ${row.parks}, load ${row.load.toFixed(1)}${allocDir ? `, allocated ${row.allocBytes!.toFixed(0)} B/chunk, GCs per 1,000 chunks minor ${row.minorGcs!.toFixed(2)} major ${row.majorGcs!.toFixed(2)}` : ''}`);
        }
      }
      const med = (name: string, k: keyof Round) => median(rounds.get(name)!.map((r) => r[k] ?? 0));
      printTable(`${streams} real-time VAD streams, medians of ${ROUNDS} paired rounds`, ['server', 'p50 ms', 'p99 ms', 'behind', 'µs/chunk: main', 'busiest other thread', 'total', 'average batch', 'parks', 'load'],
        servers.map((s) => [s.name, med(s.name, 'p50').toFixed(2), med(s.name, 'p99').toFixed(2), String(med(s.name, 'behind')), med(s.name, 'mainUs').toFixed(0), med(s.name, 'busiestUs').toFixed(0), med(s.name, 'totalUs').toFixed(0), med(s.name, 'averageBatch').toFixed(1), String(med(s.name, 'parks')), med(s.name, 'load').toFixed(1)]));
      if (allocDir) {
        printTable(`${streams} streams: the main thread's allocations (--alloc), medians of ${ROUNDS} rounds`, ['server', 'allocated B/chunk', 'minor GCs / 1,000 chunks', 'major GCs / 1,000 chunks'],
          servers.map((s) => [s.name, med(s.name, 'allocBytes').toFixed(0), med(s.name, 'minorGcs').toFixed(2), med(s.name, 'majorGcs').toFixed(2)]));
      }
      for (const s of cpuDir ? servers : []) {
        const sum = cpuSums.get(`${streams} ${s.name}`)!;
        const per = (us: number) => (us / sum.chunks).toFixed(2).padStart(7);
        console.log(`\n${streams} streams, ${s.name}: main thread sampled ${per(sum.sampled - sum.idle)} µs/chunk busy (+${per(sum.idle).trim()} idle), all rounds`);
        console.log([...sum.self].sort((a, b) => b[1] - a[1]).slice(0, CPU_TOP).map(([fn, us]) => `  self ${per(us)} µs/chunk ${fn}`).join('\n'));
        console.log([...sum.files].sort((a, b) => b[1] - a[1]).slice(0, CPU_TOP).map(([file, us]) => `  on stack ${per(us)} µs/chunk ${file}`).join('\n'));
      }
    }
    // Under load the rounds' batch sizes differ (a side that falls behind batches more), and the
    // main thread's CPU per chunk moves with them: fitted over every round of every level as
    // a + b / batch, a side's figure at one batch size can be compared with another's.
    const fits = servers.map((s) => {
      const all = [...byLevel.values()].flatMap((rounds) => rounds.get(s.name) ?? []);
      return [s.name, ...fitPerBatch(all.map((r) => [r.averageBatch, r.mainUs]))];
    });
    printTable('main thread µs/chunk fitted over all rounds as a + b / average batch (least squares)', ['server', 'rounds', 'a (per chunk)', 'b (per batch)', 'residual sd', 'at batch 8', 'at batch 16'],
      fits.map(([name, n, a, b, sd]) => [String(name), String(n), (a as number).toFixed(1), (b as number).toFixed(0), (sd as number).toFixed(1), ((a as number) + (b as number) / 8).toFixed(1), ((a as number) + (b as number) / 16).toFixed(1)]));
  } finally {
    for (const s of live) await s.stop();
    if (allocDir) rmSync(allocDir, { recursive: true, force: true });
    if (cpuDir) rmSync(cpuDir, { recursive: true, force: true });
  }
  saveSection('streamsAb', {
    levels: Object.fromEntries([...byLevel].map(([l, rounds]) => [l, Object.fromEntries(rounds)])),
    against: AGAINST ? resolve(AGAINST) : null,
  }, 'node dist/bench/streams-ab.js');
}

await main();
