// Issue 20: silero-vad's second session opened on demand (model.json `session.startInstances: 1`,
// as shipped) against both sessions opened at load (`startInstances` removed), in paired rounds
// of one run: throughput (stateless, 8 connections x 8 in flight) and real-time streams (N
// streams of 32 ms chunks, bench/lib/stream-load.ts in its own process), sides alternating which
// goes first. Every pair starts from fresh servers, so the first round includes the moment the
// on-demand session opens. Also prints each side's RSS after start and after the load.
//   node dist/bench/sessions-ab.js [--rounds 4] [--streams 150] [--seconds 4]
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { loadavg } from 'node:os';
import { numberFlag } from './lib/args.js';
import { buildRepository, NPM_START_ENV, NPM_START_NODE_ARGS, startPerch, withoutSequence, type ConfigPatch, type PerchServer } from './lib/perch-server.js';
import { threadCpuMs, threadSplit } from './lib/proc-cpu.js';
import { saveSection } from './lib/results.js';
import { median, printTable, spread } from './lib/stats.js';
import type { StreamLoadResult } from './lib/stream-load.js';
import { runVadLoad } from './lib/vad-load.js';

const STREAMS_SCRIPT = fileURLToPath(new URL('./streams.js', import.meta.url));
const ROUNDS = numberFlag('rounds', 4);
const STREAMS = numberFlag('streams', 150);
const SECONDS = numberFlag('seconds', 4);

const allAtLoad: ConfigPatch = (_m, c) => {
  delete (c.session as Record<string, unknown>).startInstances;
};
const SIDES = [
  { key: 'onDemand', label: 'second session on demand (shipped)', patch: undefined as ConfigPatch | undefined },
  { key: 'atLoad', label: 'both sessions at load', patch: allAtLoad },
] as const;

function streamLevel(url: string): Promise<StreamLoadResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [STREAMS_SCRIPT, '--generate', url, String(STREAMS), String(SECONDS), 'binary'], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.once('exit', (code) => (code === 0 ? resolve(JSON.parse(out.trim()) as StreamLoadResult) : reject(new Error(`generator exited ${code}`))));
  });
}

async function pair(patches: ReadonlyArray<ConfigPatch | undefined>, stateless: boolean): Promise<PerchServer[]> {
  return Promise.all(patches.map((p) => startPerch({
    repository: buildRepository(['silero-vad'], (m, c) => {
      if (stateless) withoutSequence(m, c);
      p?.(m, c);
    }),
    ownRepository: true,
    env: NPM_START_ENV,
    nodeArgs: NPM_START_NODE_ARGS,
  })));
}

interface Row { itemsPerSec: number[]; p99: number[]; behind: number[]; cpuUs: number[]; rssStartMiB: number; rssAfterMiB: number }

async function main(): Promise<void> {
  console.log(`# sessions A/B (issue 20): ${ROUNDS} paired rounds; throughput 8x8 stateless 1 s + 3 s; ${STREAMS} streams ${SECONDS} s; load ${loadavg()[0]!.toFixed(2)}`);
  const rows = new Map<string, Row>(SIDES.map((s) => [s.key, { itemsPerSec: [], p99: [], behind: [], cpuUs: [], rssStartMiB: 0, rssAfterMiB: 0 }]));

  const thru = await pair(SIDES.map((s) => s.patch), true);
  try {
    SIDES.forEach((s, i) => (rows.get(s.key)!.rssStartMiB = thru[i]!.rssKiB() / 1024));
    // The load generator runs in this process: one unmeasured phase warms its JIT, against the
    // at-load side only, so the on-demand side's first round still holds its session's opening.
    await runVadLoad({ wsUrl: thru[1]!.wsUrl, model: 'silero-vad', connections: 8, perConnection: 8, warmupMs: 0, durationMs: 3000 });
    for (let r = 0; r < ROUNDS; r++) {
      const order = r % 2 === 0 ? [0, 1] : [1, 0];
      for (const i of order) {
        const server = thru[i]!;
        const before = threadCpuMs(server.pid);
        const res = await runVadLoad({ wsUrl: server.wsUrl, model: 'silero-vad', connections: 8, perConnection: 8, warmupMs: 1000, durationMs: 3000 });
        const cpu = threadSplit(server.pid, before, threadCpuMs(server.pid));
        const row = rows.get(SIDES[i]!.key)!;
        row.itemsPerSec.push((res.completed * 1000) / res.windowMs);
        row.cpuUs.push((cpu.total * 1000) / Math.max(1, res.completed * (4000 / 3000)));
      }
      console.log(`throughput round ${r + 1}: ${SIDES.map((s) => `${s.key} ${rows.get(s.key)!.itemsPerSec.at(-1)!.toFixed(0)}/s`).join(', ')} (load ${loadavg()[0]!.toFixed(2)})`);
    }
    SIDES.forEach((s, i) => (rows.get(s.key)!.rssAfterMiB = thru[i]!.rssKiB() / 1024));
  } finally {
    await Promise.all(thru.map((s) => s.stop()));
  }

  const streams = await pair(SIDES.map((s) => s.patch), false);
  try {
    for (let r = 0; r < ROUNDS; r++) {
      const order = r % 2 === 0 ? [1, 0] : [0, 1];
      for (const i of order) {
        const res = await streamLevel(streams[i]!.wsUrl);
        const row = rows.get(SIDES[i]!.key)!;
        row.p99.push(res.p99);
        row.behind.push(res.behind + res.errors);
      }
      console.log(`streams round ${r + 1}: ${SIDES.map((s) => `${s.key} p99 ${rows.get(s.key)!.p99.at(-1)!.toFixed(1)} ms behind ${rows.get(s.key)!.behind.at(-1)}`).join(', ')} (load ${loadavg()[0]!.toFixed(2)})`);
    }
  } finally {
    await Promise.all(streams.map((s) => s.stop()));
  }

  printTable(
    `silero-vad sessions: on demand vs at load (medians of ${ROUNDS} paired rounds; ranges)`,
    ['side', 'items/s', 'range', 'CPU us/item', `${STREAMS} streams p99 ms`, 'range', 'streams behind+errors', 'RSS at start MiB', 'RSS after load MiB'],
    SIDES.map((s) => {
      const x = rows.get(s.key)!;
      return [s.label, median(x.itemsPerSec).toFixed(0), spread(x.itemsPerSec, 0), median(x.cpuUs).toFixed(1), median(x.p99).toFixed(1), spread(x.p99, 1), String(Math.max(...x.behind)), x.rssStartMiB.toFixed(1), x.rssAfterMiB.toFixed(1)];
    }),
  );
  const a = rows.get('onDemand')!;
  const b = rows.get('atLoad')!;
  const perRound = a.itemsPerSec.map((v, i) => v / b.itemsPerSec[i]!);
  console.log(`\nthroughput on demand / at load, per round: ${perRound.map((x) => x.toFixed(2)).join(' ')} (median ${median(perRound).toFixed(2)})`);
  saveSection('sessionsAB', {
    rounds: ROUNDS, streams: STREAMS, seconds: SECONDS,
    sides: SIDES.map((s) => ({ side: s.key, ...rows.get(s.key)! })),
    throughputRatioPerRound: perRound,
  }, 'node dist/bench/sessions-ab.js');
}

await main();
