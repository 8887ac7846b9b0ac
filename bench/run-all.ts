// `npm run bench`: every benchmark in its own process, one after the other (so none disturbs
// another), then a summary of the targets from build/bench/results.json. The store benchmarks
// (bench/outbox.ts, bench/cache.ts) run too when they have been built; they print their own tables.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from '../test/helpers/paths.js';
import { machine, readResults, RESULTS_FILE, saveSection } from './lib/results.js';
import { printTable, ratio } from './lib/stats.js';

const BENCHES = ['overhead', 'decompose', 'hop', 'session-thread', 'wake', 'throughput', 'sessions-ab', 'memory', 'grpc-memory', 'streams', 'outbox', 'cache'];
/** Runtime benchmarks are written to finish in about a minute each (streams in about two); a hung one is stopped. */
const LIMIT_MS = Number(process.env.PERCH_BENCH_LIMIT_MS ?? 150_000);
const LONGER: Record<string, number> = { overhead: 300_000, streams: 300_000, memory: 300_000, 'sessions-ab': 300_000, 'session-thread': 300_000 };
/** Whose targets each benchmark measures (the summary's issue column). */
const ISSUE_OF: Record<string, number> = { overhead: 2, throughput: 2, memory: 2, streams: 3 };

interface Ran {
  bench: string;
  status: 'ok' | 'failed' | 'skipped' | 'timed out';
  seconds: number;
}

/** Signals a benchmark's whole process group; ESRCH (nothing left in it) is fine. */
function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
  }
}

/**
 * Each benchmark runs in a process group of its own, so a timed-out one is stopped with
 * everything it started (Perch servers, echo servers, brokers): a SIGTERM does not run their
 * `exit` handlers, and an orphan would keep a port and a core busy during the next benchmark.
 */
let running: number | null = null;
// Its own group does not get the terminal's Ctrl-C or our SIGTERM: pass them on.
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    if (running !== null) signalGroup(running, 'SIGKILL');
    process.kill(process.pid, signal);
  });
}

function run(file: string, limitMs: number): Promise<{ code: number | null; timedOut: boolean }> {
  const child = spawn(process.execPath, [file], { cwd: REPO_ROOT, stdio: 'inherit', detached: true });
  const pid = child.pid as number;
  running = pid;
  let timedOut = false;
  let kill: NodeJS.Timeout | undefined;
  const timer = setTimeout(() => {
    timedOut = true;
    signalGroup(pid, 'SIGTERM');
    kill = setTimeout(() => signalGroup(pid, 'SIGKILL'), 10_000);
  }, limitMs);
  return new Promise((resolve) =>
    child.once('exit', (code) => {
      clearTimeout(timer);
      clearTimeout(kill);
      // Whatever it left behind goes too.
      signalGroup(pid, 'SIGKILL');
      running = null;
      resolve({ code, timedOut });
    }),
  );
}

interface Target {
  metric: string;
  value: number;
  met: boolean;
  max?: number;
  min?: number;
  /** The issue that set it, when not the benchmark's own (ISSUE_OF). */
  issue?: number;
}

function targetsOf(section: unknown): Target[] {
  const s = section as { target?: Target; targets?: Target[] } | undefined;
  return s ? [...(s.target ? [s.target] : []), ...(s.targets ?? [])] : [];
}

/** The anchors' lines of the summary (bench/overhead.ts `anchors`, bench/streams.ts `minimalStreams`). */
function anchorRows(results: Record<string, unknown>): string[][] {
  const rows: string[][] = [];
  const o = results.overhead as { rows?: Array<{ executor: string; transport: string; p50Ms: number; ratioP50: number }>; anchors?: Array<{ transport: string; executor: string; perchOverMinimal: number; minimalOverRaw: number }> } | undefined;
  for (const a of o?.anchors ?? []) {
    const row = (e: string) => o?.rows?.find((r) => r.executor === e && r.transport === a.transport);
    const minimal = row(a.executor === 'worker' ? 'minimal' : 'minimal-main')?.p50Ms ?? Number.NaN;
    // Both ratios are medians of the rounds' own (paired) ratios, as bench/overhead.ts prints them.
    rows.push([`overhead ${a.transport} (${a.executor}), p50 ms`, (row(a.executor)?.p50Ms ?? Number.NaN).toFixed(3), minimal.toFixed(3), ratio(a.perchOverMinimal), ratio(row(a.executor)?.ratioP50 ?? Number.NaN)]);
  }
  const st = results.streams as { bestStreams?: number; minimalStreams?: number; rawBatch32Streams?: number } | undefined;
  if (st?.minimalStreams !== undefined && st.bestStreams !== undefined && st.rawBatch32Streams !== undefined) {
    rows.push(['streams, p99 <= 20 ms (raw: batch-32 ceiling)', String(st.bestStreams), String(st.minimalStreams), ratio(st.bestStreams / st.minimalStreams), ratio(st.bestStreams / st.rawBatch32Streams)]);
  }
  return rows;
}

async function main(): Promise<void> {
  const m = machine();
  console.log(`# perch benchmarks: ${m.nproc} cpus (${m.cpuModel}), node ${m.node}, onnxruntime-node ${m.onnxruntimeNode}, load ${m.loadavg1mAtStart}`);
  const ran: Ran[] = [];
  const started = performance.now();
  for (const bench of BENCHES) {
    const file = join(REPO_ROOT, 'dist', 'bench', `${bench}.js`);
    if (!existsSync(file)) {
      ran.push({ bench, status: 'skipped', seconds: 0 });
      continue;
    }
    console.log(`\n======== ${bench} ========`);
    const t0 = performance.now();
    const { code, timedOut } = await run(file, Math.max(LIMIT_MS, LONGER[bench] ?? 0));
    ran.push({ bench, status: timedOut ? 'timed out' : code === 0 ? 'ok' : 'failed', seconds: (performance.now() - t0) / 1000 });
  }

  const results = readResults();
  const rows: string[][] = [];
  for (const [bench, issue] of Object.entries(ISSUE_OF)) {
    for (const t of targetsOf(results[bench])) {
      const goal = t.max !== undefined ? `<= ${t.max}` : `>= ${t.min}`;
      const value = Number.isInteger(t.value) ? String(t.value) : ratio(t.value);
      rows.push([`#${t.issue ?? issue}`, bench, t.metric, value, goal, t.met ? 'met' : 'NOT met']);
    }
  }
  console.log('\n======== summary ========');
  printTable('Benchmarks run', ['benchmark', 'status', 'seconds'], ran.map((r) => [r.bench, r.status, r.seconds.toFixed(0)]));
  printTable('Targets', ['issue', 'benchmark', 'metric', 'value', 'target', 'result'], rows);
  printTable('Issue 20: Perch against the minimal served anchors of the same run', ['benchmark', 'Perch', 'minimal', 'Perch / minimal', 'Perch / raw'], anchorRows(results));
  console.log(`\n# results: ${RESULTS_FILE}; total ${((performance.now() - started) / 1000).toFixed(0)} s; update docs/benchmarks.md from them`);
  saveSection('runAll', { benches: ran, totalSeconds: (performance.now() - started) / 1000 }, 'npm run bench');
  if (ran.some((r) => r.status === 'failed' || r.status === 'timed out')) process.exitCode = 1;
}

await main();
