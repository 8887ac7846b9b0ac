// Issue 20: why a session's `run` takes longer on Perch's session thread than raw `session.run`
// in a quiet benchmark process (bench/decompose.ts: 2.74 vs 1.82 ms p50, 2026-11-29). Raw
// onnxruntime-node only, no Perch: PP-OCR cls with Perch's session options, each configuration
// in a process of its own (bench/lib/session-probe.ts), all alive at once and run in interleaved
// rounds (one at a time; the order reverses every round), each round N runs. Per configuration:
// p50 of the wall time of a run on the thread that runs it (as Perch's session thread times it),
// p50 of the CPU time of the run, mean minor page faults per run, and the ratio of its p50 wall to raw back to back on the
// main thread in the same round.
//   - where: main thread, a bare worker thread running its own loop, or a worker fed one run at
//     a time by the main thread (postMessage of a copied input, as Perch does);
//   - between runs: nothing (back to back, as the raw anchor of every benchmark), the thread
//     asleep for --pause-ms (as a session thread between one client's requests), or spinning
//     as long (the core kept busy);
//   - Perch's other shipped sessions open and idle on their own threads beside it;
//   - npm start's malloc environment (package.json: MALLOC_ARENA_MAX, MALLOC_MMAP_THRESHOLD_).
//   node dist/bench/session-thread.js [--rounds 6] [--runs 300] [--pause-ms 2]
import { fork, type ChildProcess } from 'node:child_process';
import { loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { numberFlag } from './lib/args.js';
import { NPM_START_ENV } from './lib/perch-server.js';
import { saveSection } from './lib/results.js';
import type { ProbeConfig, RunSample } from './lib/session-probe.js';
import { median, printTable } from './lib/stats.js';

const ROUNDS = numberFlag('rounds', 6);
const RUNS = numberFlag('runs', 300);
const PAUSE_MS = numberFlag('pause-ms', 2);
const WARMUP_RUNS = 100;
const PROBE = fileURLToPath(new URL('./lib/session-probe.js', import.meta.url));

interface Config extends ProbeConfig {
  env?: Record<string, string>;
}

const base = { pauseMs: PAUSE_MS, otherSessions: [] as string[] };
const CONFIGS: Config[] = [
  { ...base, name: 'main thread, back to back (the raw anchor)', thread: 'main', drive: 'loop', pause: 'none' },
  { ...base, name: `main thread, asleep ${PAUSE_MS} ms between runs`, thread: 'main', drive: 'loop', pause: 'sleep' },
  { ...base, name: `main thread, spinning ${PAUSE_MS} ms between runs`, thread: 'main', drive: 'loop', pause: 'spin' },
  { ...base, name: 'worker thread, back to back', thread: 'worker', drive: 'loop', pause: 'none' },
  { ...base, name: `worker thread, asleep ${PAUSE_MS} ms between runs`, thread: 'worker', drive: 'loop', pause: 'sleep' },
  { ...base, name: `worker fed by postMessage, main asleep ${PAUSE_MS} ms (as Perch)`, thread: 'worker', drive: 'hop', pause: 'sleep' },
  { ...base, name: 'worker fed by postMessage, back to back', thread: 'worker', drive: 'hop', pause: 'none' },
  { ...base, name: `as Perch, silero-vad + blazeface open and idle beside it`, thread: 'worker', drive: 'hop', pause: 'sleep', otherSessions: ['silero-vad', 'blazeface'] },
  { ...base, name: "main thread, back to back, npm start's malloc env", thread: 'main', drive: 'loop', pause: 'none', env: NPM_START_ENV },
  { ...base, name: `as Perch, npm start's malloc env`, thread: 'worker', drive: 'hop', pause: 'sleep', env: NPM_START_ENV },
];

class Probe {
  private constructor(readonly cfg: Config, private readonly child: ChildProcess) {}

  static async start(cfg: Config): Promise<Probe> {
    const child = fork(PROBE, [JSON.stringify(cfg)], { env: { ...process.env, ...cfg.env }, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    await new Promise<void>((resolve, reject) => {
      child.once('message', () => resolve());
      child.once('exit', (code) => reject(new Error(`probe '${cfg.name}' exited with ${code}`)));
    });
    return new Probe(cfg, child);
  }

  round(runs: number): Promise<RunSample[]> {
    return new Promise((resolve) => {
      this.child.once('message', (m) => resolve(m as RunSample[]));
      this.child.send({ runs });
    });
  }

  stop(): void {
    this.child.send('exit');
  }
}

async function main(): Promise<void> {
  const load = loadavg()[0]!.toFixed(2);
  console.log(`# session-thread (issue 20): raw PP-OCR cls session.run in ${CONFIGS.length} configurations, ${ROUNDS} interleaved rounds x ${RUNS} runs, pause ${PAUSE_MS} ms; load ${load}`);
  const probes: Probe[] = [];
  try {
    for (const c of CONFIGS) probes.push(await Probe.start(c));
    for (const p of probes) await p.round(WARMUP_RUNS);
    const wall = probes.map(() => [] as number[]);
    const cpu = probes.map(() => [] as number[]);
    const faults = probes.map(() => [] as number[]);
    const ratios = probes.map(() => [] as number[]);
    for (let r = 0; r < ROUNDS; r++) {
      const order = probes.map((_, i) => i);
      if (r % 2 === 1) order.reverse();
      const roundWall: number[] = [];
      for (const i of order) {
        const s = await probes[i]!.round(RUNS);
        roundWall[i] = median(s.map((x) => x.wallMs));
        wall[i]!.push(roundWall[i]!);
        cpu[i]!.push(median(s.map((x) => x.cpuMs)));
        faults[i]!.push(s.reduce((a, x) => a + x.faults, 0) / s.length);
      }
      for (let i = 0; i < probes.length; i++) ratios[i]!.push(roundWall[i]! / roundWall[0]!);
    }
    const endLoad = loadavg()[0]!.toFixed(2);
    printTable(
      `Raw session.run of PP-OCR cls by configuration (medians over ${ROUNDS} rounds of ${RUNS}; load ${load} at start, ${endLoad} at the end), ms`,
      ['configuration', 'wall p50', 'CPU p50', 'page faults / run', 'wall / anchor', 'wall p50 per round'],
      probes.map((p, i) => [p.cfg.name, median(wall[i]!).toFixed(3), median(cpu[i]!).toFixed(3), median(faults[i]!).toFixed(1), median(ratios[i]!).toFixed(2), wall[i]!.map((x) => x.toFixed(3)).join(' ')]),
    );
    saveSection('session-thread', {
      rounds: ROUNDS,
      runs: RUNS,
      pauseMs: PAUSE_MS,
      loadavg1m: Number(load),
      loadavg1mAtEnd: Number(endLoad),
      configurations: probes.map((p, i) => ({
        name: p.cfg.name,
        wallP50: median(wall[i]!),
        cpuP50: median(cpu[i]!),
        pageFaultsPerRun: median(faults[i]!),
        ratioToAnchor: median(ratios[i]!),
        perRoundWallP50: wall[i]!,
      })),
    }, 'node dist/bench/session-thread.js');
  } finally {
    for (const p of probes) p.stop();
  }
}

await main();
