// Resident memory at idle (issue 2, "Benchmark"; aim: under 120 MB): the Perch process serving
// the shipped repository (silero-vad + pp-ocr-cls, their own model.json), read from
// /proc/<pid>/status VmRSS once it is serving and again after some idle seconds. For context,
// the same read on bare node, on node with onnxruntime-node required, and on node holding the
// same two raw onnxruntime sessions (what Perch holds, without Perch).
// Run: node dist/bench/memory.js   (PERCH_BENCH_IDLE_MS to change the idle time)
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { REPO_ROOT, SHIPPED_MODELS } from '../test/helpers/paths.js';
import { readdirSync } from 'node:fs';
import { buildRepository, procStatusKiB, startPerch, withExecutor, type ConfigPatch } from './lib/perch-server.js';
import { machine, saveSection } from './lib/results.js';
import { median, printTable, sleep } from './lib/stats.js';

const IDLE_MS = Number(process.env.PERCH_BENCH_IDLE_MS ?? 5000);
const REPEATS = 2;
const AIM_MB = 120;
const SHIPPED = ['pp-ocr-cls', 'silero-vad'];

const MiB = (kib: number) => kib / 1024;
const mb = (kib: number) => (kib * 1024) / 1e6; // the aim is in MB (10^6 bytes)

interface Reading {
  readyKiB: number;
  idleKiB: number;
  hwmKiB: number;
}

async function perchReading(executor: 'worker' | 'inline' | null, models: readonly string[] = SHIPPED, patch?: ConfigPatch): Promise<Reading> {
  const repository = buildRepository(models, patch ?? (executor ? withExecutor(executor) : undefined));
  const server = await startPerch({ repository, ownRepository: true });
  try {
    const readyKiB = server.rssKiB();
    await sleep(IDLE_MS);
    return { readyKiB, idleKiB: server.rssKiB(), hwmKiB: server.hwmKiB() };
  } finally {
    await server.stop();
  }
}

const IDLE_FOREVER = `console.log('ready');setInterval(()=>{},1e6)`;

/** Runs a node -e script that prints "ready" once set up and then idles; killed after the reading. */
async function baselineReading(script: string): Promise<Reading> {
  const child = spawn(process.execPath, ['-e', script], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    const lines = createInterface({ input: child.stdout });
    const [line] = (await Promise.race([once(lines, 'line'), once(child, 'exit').then(() => { throw new Error(`baseline exited: ${script}`); })])) as [string];
    if (line !== 'ready') throw new Error(`baseline said ${line}`);
    const pid = child.pid as number;
    const readyKiB = procStatusKiB(pid, 'VmRSS');
    await sleep(IDLE_MS);
    return { readyKiB, idleKiB: procStatusKiB(pid, 'VmRSS'), hwmKiB: procStatusKiB(pid, 'VmHWM') };
  } finally {
    child.kill('SIGKILL');
  }
}

const sessionsScript = () => {
  const files = SHIPPED.map((m) => JSON.stringify(join(SHIPPED_MODELS, m, '1', 'model.onnx')));
  return `const ort=require('onnxruntime-node');const o={intraOpNumThreads:1,interOpNumThreads:1,executionMode:'sequential',graphOptimizationLevel:'all'};` +
    `(async()=>{globalThis.s=[];for(const f of [${files.join(',')}])s.push(await ort.InferenceSession.create(f,o));${IDLE_FOREVER}})()`;
};

async function main(): Promise<void> {
  const m = machine();
  console.log(`# memory benchmark: RSS (VmRSS) at idle; ${m.nproc} cpus (${m.cpuModel}), node ${m.node}, onnxruntime-node ${m.onnxruntimeNode}`);
  console.log(`# Perch serves a copy of the shipped repository (${SHIPPED.join(', ')}); idle ${IDLE_MS} ms; Perch median of ${REPEATS} starts`);

  const perch: Reading[] = [];
  for (let i = 0; i < REPEATS; i++) perch.push(await perchReading(null));
  const inline = await perchReading('inline');
  // The whole shipped repository (with the pipelines and their models, issue 17): as shipped
  // (the OCR and face models load on first use), and with every model loaded at start.
  const all = readdirSync(SHIPPED_MODELS, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name);
  const whole = await perchReading(null, all);
  const wholeEager = await perchReading(null, all, (_m, c) => {
    if (c.loading === 'firstUse') c.loading = 'startup';
  });
  const [bare, ortOnly, rawSessions] = await Promise.all([
    baselineReading(IDLE_FOREVER),
    baselineReading(`require('onnxruntime-node');${IDLE_FOREVER}`),
    baselineReading(sessionsScript()),
  ]);

  const med = (rs: Reading[], k: keyof Reading) => median(rs.map((r) => r[k]));
  const perchIdle = med(perch, 'idleKiB');
  const rows: Array<{ what: string; r: Reading }> = [
    { what: 'perch serve, shipped repository (default: worker executor)', r: { readyKiB: med(perch, 'readyKiB'), idleKiB: perchIdle, hwmKiB: med(perch, 'hwmKiB') } },
    { what: 'perch serve, same models with session.executor "inline"', r: inline },
    { what: `perch serve, all of models/ (${all.length} models; OCR and face models load on first use)`, r: whole },
    { what: 'perch serve, all of models/, every model loaded at start', r: wholeEager },
    { what: 'baseline: node, two raw sessions of the same models', r: rawSessions },
    { what: "baseline: node -e \"require('onnxruntime-node')\"", r: ortOnly },
    { what: 'baseline: bare node', r: bare },
  ];
  printTable(
    'Resident memory (MiB; VmRSS when ready, after the idle wait, and peak VmHWM)',
    ['process', 'ready', `idle ${IDLE_MS / 1000}s`, 'peak'],
    rows.map(({ what, r }) => [what, MiB(r.readyKiB).toFixed(1), MiB(r.idleKiB).toFixed(1), MiB(r.hwmKiB).toFixed(1)]),
  );
  const met = mb(perchIdle) < AIM_MB;
  console.log(`\nperch at idle: ${mb(perchIdle).toFixed(1)} MB (${MiB(perchIdle).toFixed(1)} MiB; aim < ${AIM_MB} MB): ${met ? 'MET' : 'NOT MET'}`);
  saveSection('memory', {
    idleMs: IDLE_MS,
    repeats: REPEATS,
    rows: rows.map(({ what, r }) => ({ process: what, readyMiB: MiB(r.readyKiB), idleMiB: MiB(r.idleKiB), peakMiB: MiB(r.hwmKiB) })),
    perchStartsIdleMiB: perch.map((r) => MiB(r.idleKiB)),
    target: { metric: 'perch RSS at idle (MB)', max: AIM_MB, value: mb(perchIdle), met },
  }, 'node dist/bench/memory.js');
}

await main();
