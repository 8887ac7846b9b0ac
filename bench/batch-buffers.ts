// Issue 20: what a stream batch's buffers cost under npm start's malloc tunables, and what using
// them again saves (runtime/tensor/buffer-pool.ts). No server, no sockets: silero-vad on a real
// session thread (the worker executor), batches of --batch stream chunks stacked as the model
// instance stacks them (input on axis 0, state on axis 1, sr shared), two in flight as the
// batcher's lookahead keeps them, the outputs split per request. Two ways, in interleaved phases
// of one process: "new buffers" (stacked into new ArrayBuffers, the state output gathered into
// another, as before the pool) and "pool" (stacked into pooled buffers handed back with the result,
// the state output split in place, as Perch runs now). Per batch: the process's CPU (every thread,
// user + system), its minor page faults, and the wall time from stacking to the split. The
// environment is a process's own from its start, so each one runs in a child of its own:
// npm start's (package.json start: MALLOC_ARENA_MAX, MALLOC_MMAP_THRESHOLD_) and none.
//   node dist/bench/batch-buffers.js [--batch 17] [--rounds 6] [--phase-ms 2000]
import { fork } from 'node:child_process';
import { loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { numberFlag } from './lib/args.js';
import { NPM_START_ENV } from './lib/perch-server.js';
import { saveSection } from './lib/results.js';
import { median, percentile, printTable } from './lib/stats.js';
import { MODEL_FILES } from '../test/helpers/paths.js';
import { createWorkerExecutor } from '../runtime/sessions/worker-executor.js';
import { BufferPool } from '../runtime/tensor/buffer-pool.js';
import { concatAlongAxis, splitAlongAxis, type Tensor } from '../runtime/tensor/tensor.js';

const BATCH = numberFlag('batch', 17);
const ROUNDS = numberFlag('rounds', 6);
const PHASE_MS = numberFlag('phase-ms', 2000);
const WAYS = ['new buffers', 'pool'] as const;
type Way = (typeof WAYS)[number];

interface Phase {
  way: Way;
  batches: number;
  cpuUs: number;
  faults: number;
  p50: number;
  p99: number;
}

function requests(n: number): Tensor[][] {
  return Array.from({ length: n }, (_, i) => [
    { name: 'input', datatype: 'FP32', shape: [1, 576], data: Float32Array.from({ length: 576 }, (_, k) => Math.sin((i + 1) * k) * 0.1) },
    { name: 'state', datatype: 'FP32', shape: [2, 1, 128], data: new Float32Array(256) },
  ]);
}

async function child(): Promise<void> {
  const executor = await createWorkerExecutor(MODEL_FILES.sileroVad16k, {
    intraOpNumThreads: 1, interOpNumThreads: 1, executionProviders: ['cpu'], graphOptimizationLevel: 'all', instances: 1, executor: 'worker',
  });
  const reqs = requests(BATCH);
  const sr: Tensor = { name: 'sr', datatype: 'INT64', shape: [], data: new BigInt64Array([16000n]) };
  const pool = new BufferPool();
  const sizes = new Array<number>(BATCH).fill(1);
  const batch = async (way: Way): Promise<number> => {
    const started = performance.now();
    const p = way === 'pool' ? pool : undefined;
    const feeds = [concatAlongAxis(reqs.map((r) => r[0] as Tensor), 0, p), concatAlongAxis(reqs.map((r) => r[1] as Tensor), 1, p), { ...sr, data: new BigInt64Array([16000n]) }];
    const { outputs, returned } = await executor.run(feeds);
    if (p && returned) for (const b of returned) p.give(b);
    for (const out of outputs) splitAlongAxis(out, out.name === 'stateN' ? 1 : 0, sizes, way === 'pool');
    return performance.now() - started;
  };
  const phase = async (way: Way, ms: number): Promise<Phase> => {
    const cpu = process.cpuUsage();
    const faults = process.resourceUsage().minorPageFault;
    const walls: number[] = [];
    const end = performance.now() + ms;
    // Two in flight: the batcher hands a session thread the next batch while it runs one.
    const lane = async (): Promise<void> => {
      while (performance.now() < end) walls.push(await batch(way));
    };
    await Promise.all([lane(), lane()]);
    const used = process.cpuUsage(cpu);
    return {
      way, batches: walls.length, cpuUs: (used.user + used.system) / walls.length,
      faults: (process.resourceUsage().minorPageFault - faults) / walls.length,
      p50: percentile(walls, 50), p99: percentile(walls, 99),
    };
  };
  for (const way of WAYS) await phase(way, 1000); // warm-up: JIT, the session's arena
  const phases: Phase[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    for (const way of r % 2 === 0 ? WAYS : [...WAYS].reverse()) phases.push(await phase(way, PHASE_MS));
  }
  await executor.close();
  process.send?.(phases);
}

function runChild(env: Record<string, string>): Promise<Phase[]> {
  return new Promise((resolve, reject) => {
    const c = fork(fileURLToPath(import.meta.url), ['--child', ...process.argv.slice(2)], { env: { ...process.env, ...env } });
    c.once('message', (m) => resolve(m as Phase[]));
    c.once('exit', (code) => (code === 0 ? undefined : reject(new Error(`child exited ${code}`))));
  });
}

async function main(): Promise<void> {
  const envs: Array<[string, Record<string, string>]> = [["npm start's", NPM_START_ENV], ['none', {}]];
  const rows: string[][] = [];
  const saved: Record<string, unknown> = {};
  console.log(`# batch buffers: batches of ${BATCH} stream chunks, ${ROUNDS} rounds x ${PHASE_MS} ms per way; load ${loadavg()[0]?.toFixed(1)}`);
  for (const [name, env] of envs) {
    const phases = await runChild(env);
    saved[name] = phases;
    for (const way of WAYS) {
      const mine = phases.filter((p) => p.way === way);
      const med = (k: keyof Omit<Phase, 'way'>) => median(mine.map((p) => p[k]));
      rows.push([name, way, med('batches').toFixed(0), med('cpuUs').toFixed(0), med('faults').toFixed(1), med('p50').toFixed(3), med('p99').toFixed(3)]);
    }
  }
  printTable(`batches of ${BATCH}, medians of ${ROUNDS} interleaved phases (load ${loadavg()[0]?.toFixed(1)} at the end)`, ['malloc environment', 'buffers', `batches / ${PHASE_MS} ms`, 'CPU µs / batch', 'minor faults / batch', 'p50 ms', 'p99 ms'], rows);
  saveSection('batchBuffers', { batch: BATCH, rounds: ROUNDS, phaseMs: PHASE_MS, phases: saved }, 'node dist/bench/batch-buffers.js');
}

if (process.argv.includes('--child')) await child();
else await main();
