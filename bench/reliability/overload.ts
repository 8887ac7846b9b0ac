// The overload campaign (issue 12; docs/reliability.md): a real Perch process serving the
// shipped models, attacked over loopback by clients that never read, hold large bodies open,
// send JSON that expands, flood it far past capacity, or send their headers a byte a second.
// For each attack: RSS at idle before, its peak during the attack, RSS 30 s after the clients
// left, and health latency during the attack (live and ready, on the main port and on the control
// listener, server.control.port; probe.ts), with the main thread's CPU while each main-port probe
// waited (probe-thread.ts), who had the CPU meanwhile (Perch's main thread on a CPU and waiting
// for one, its other threads, the campaign itself; cpu.ts), and the inference requests Perch
// answered, with the main thread's CPU per answer (answers.ts), and the malloc_trim calls after the
// clients left (perch_memory_trims_total: whether the idle collector saw a burst). Each attack is bounded in time.
// Prints a table and writes build/bench/reliability.json.
// Run: npm run build && node dist/bench/reliability/overload.js   (PERCH_ATTACK_MS, PERCH_SETTLE_MS, PERCH_MAX_CLIENT_MB, PERCH_MAX_QUEUE_MB, PERCH_ATTACK_NICE)
import { rmSync } from 'node:fs';
import { loadavg } from 'node:os';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SHIPPED_MODELS } from '../../test/helpers/paths.js';
import { startPerch } from '../lib/perch-server.js';
import { writeRunFile } from '../lib/results.js';
import { printTable, sleep } from '../lib/stats.js';
import { answerCounts, answered, answersBetween, type AnswerCounts } from './answers.js';
import { ATTACK_NICE, niceAttackers, nicesSummary } from './attack-nice.js';
import { flood, heldBodies, largeJson, slowHeaders, wsNonReaders, type Attack } from './attacks.js';
import { cpuBetween, cpuSample, readTurnLog, turnFigures, type CpuFigures } from './cpu.js';
import { memoryBreakdown, sampleAtPeak, type MemoryBreakdown } from './memory.js';
import { mb, watch, type ProbeFigures, type WatchFigures } from './probe.js';

const ATTACK_MS = Number(process.env.PERCH_ATTACK_MS ?? 15_000);
const SETTLE_MS = Number(process.env.PERCH_SETTLE_MS ?? 30_000);
const ONLY = process.env.PERCH_ATTACKS?.split(',');
// Node flags for the Perch child, to profile an attack (e.g. PERCH_NODE_ARGS='--cpu-prof --cpu-prof-dir=prof').
const NODE_ARGS = process.env.PERCH_NODE_ARGS?.split(' ').filter(Boolean) ?? [];
// PERCH_TURN_LOG=<file>: Perch logs its main loop's long turns there (turn-log.ts), and a last
// table says what they were made of in each attack (the thread on a CPU, or waiting for one).
const TURN_LOG = process.env.PERCH_TURN_LOG ? resolve(process.env.PERCH_TURN_LOG) : null;
if (TURN_LOG) {
  process.env.PERCH_TURN_LOG = TURN_LOG; // Perch runs in its data dir: the path must be absolute
  rmSync(TURN_LOG, { force: true });
  NODE_ARGS.push(`--import=${fileURLToPath(new URL('./turn-log.js', import.meta.url))}`);
}
const monoUs = (): number => Number(process.hrtime.bigint() / 1000n);
/** server.maxClientBytes in MiB for this run (the default, 128, when unset): to weigh other budgets. */
const MAX_CLIENT_MB = Number(process.env.PERCH_MAX_CLIENT_MB ?? 0);
/** pp-ocr-cls's batching.maxQueueBytes in MiB (the flood's model; default 32): to weigh the queue's bound, 0 = the default. */
const MAX_QUEUE_MB = Number(process.env.PERCH_MAX_QUEUE_MB ?? 0);
const RSS_LIMIT_MB = 400;
const RETURN_MB = 50;
const HEALTH_P99_MS = 50;
// The C allocator's settings Perch ships with (npm start, the image; docs/reliability.md): the
// child inherits them. Set them in the environment to measure others (MALLOC_ARENA_MAX=8 ...).
process.env.MALLOC_ARENA_MAX ??= '2';
process.env.MALLOC_MMAP_THRESHOLD_ ??= '16384';

interface Row extends WatchFigures {
  attack: string;
  idleRssMB: number;
  /** The machine's 1-minute load average at the end of the attack (it is shared: say so). */
  load: number;
  afterRssMB: number;
  counts: Record<string, number>;
  /** Where memory was at the highest of the split's readings during the attack (every 0.5 s), at its end, and after the clients left. */
  atPeak: MemoryBreakdown | null;
  atEnd: MemoryBreakdown;
  after: MemoryBreakdown;
  /** CPU over the attack (from its clients in place to its end). */
  cpu: CpuFigures;
  /** Inference requests Perch answered over the same span, by its /metrics (answers.ts). */
  answers: AnswerCounts | undefined;
  /** malloc_trim calls after the attack's clients left (perch_memory_trims_total): did the idle collector see a burst? */
  trims: number;
  /** The attack's window on the monotonic clock (to cut the turn log). */
  fromUs: number;
  toUs: number;
}

const attacks: Array<[string, (port: number, wsUrl: string) => Promise<Attack> | Attack]> = [
  ['300 WebSocket clients that never read', (_p, ws) => wsNonReaders(ws, 300)],
  ['60 HTTP bodies of 31 MiB held open', (p) => heldBodies(p, 60, 31 * 1024 * 1024)],
  ['JSON bodies of 12 MB short numbers, 8 at a time', (p) => largeJson(p, 8, 12_000_000)],
  ['infer flood: 200 HTTP + 100 WebSocket clients pipelining', (p, ws) => flood(p, ws, 200, 100)],
  ['1,000 connections sending headers a byte a second', (p) => slowHeaders(p, 1000)],
];

// A signal (a time limit) must not leave the Perch child running: exit runs perch-server's kill.
for (const sig of ['SIGTERM', 'SIGINT'] as const) process.once(sig, () => process.exit(1));

async function main(): Promise<void> {
  // The control listener on (docs/reliability.md): its health answers are measured beside the main port's.
  const server = await startPerch({ repository: SHIPPED_MODELS, readyTimeoutMs: 120_000, nodeArgs: NODE_ARGS, config: {
    server: { control: { port: 0 }, ...(MAX_CLIENT_MB ? { maxClientBytes: MAX_CLIENT_MB * 1024 * 1024 } : {}) },
    ...(MAX_QUEUE_MB ? { models: { overrides: { 'pp-ocr-cls': { batching: { maxQueueBytes: MAX_QUEUE_MB * 1024 * 1024 } } } } } : {}),
  } });
  console.log(`perch serving on port ${server.port} (control listener on ${server.controlPort}) after ${Math.round(server.startMs)} ms`);
  // PERCH_ATTACK_NICE: the attack clients at a lower priority from here on, the prober not (attack-nice.ts).
  const proberNice = ATTACK_NICE === null ? undefined : niceAttackers(ATTACK_NICE);
  const rows: Row[] = [];
  // V8's figures from /metrics on the control listener: the main port may not answer at the end of an attack.
  const metricsUrl = server.controlPort !== null ? `http://127.0.0.1:${server.controlPort}` : server.baseUrl;
  try {
    await sleep(3000); // settle after start-up
    for (const [name, start] of attacks) {
      if (ONLY && !ONLY.some((o) => name.includes(o))) continue;
      const idleRssMB = mb(server.rssKiB());
      console.log(`${name}: starting (idle RSS ${idleRssMB} MB)`);
      const trimsFrom = await server.metric('perch_memory_trims_total');
      const w = watch(server, proberNice);
      const attack = await start(server.port, server.wsUrl);
      console.log(`${name}: clients in place`);
      const answersFrom = await answerCounts(metricsUrl);
      const cpuFrom = cpuSample(server.pid);
      const fromUs = monoUs();
      const peakSplit = sampleAtPeak(server.pid, metricsUrl, () => server.rssKiB());
      await sleep(ATTACK_MS);
      const atPeak = await peakSplit.stop();
      const toUs = monoUs();
      const cpu = cpuBetween(cpuFrom, cpuSample(server.pid));
      const answers = answersBetween(answersFrom, await answerCounts(metricsUrl));
      const loadAtEnd = Number((loadavg()[0] ?? 0).toFixed(1));
      const atEnd = await memoryBreakdown(server.pid, metricsUrl, server.rssKiB());
      // Read while the prober still runs: it should be the campaign's one thread at the campaign's nice.
      if (ATTACK_NICE !== null) console.log(`${name}: threads by nice: campaign ${nicesSummary('self')} (the prober among them), Perch ${nicesSummary(server.pid)}`);
      const figures = await w.stop();
      attack.leave();
      await sleep(SETTLE_MS);
      const after = await memoryBreakdown(server.pid, metricsUrl, server.rssKiB());
      const trims = (await server.metric('perch_memory_trims_total')) - trimsFrom;
      const row: Row = { attack: name, idleRssMB, ...figures, afterRssMB: after.rssMB, load: loadAtEnd, counts: attack.counts, atPeak, atEnd, after, trims, cpu, answers, fromUs, toUs };
      rows.push(row);
      console.log(`${name}: ${JSON.stringify(row)}`);
    }
    const refusals = await server.metric('perch_client_refusals_total');
    printTable(
      `Overload campaign (attack ${ATTACK_MS / 1000} s, settle ${SETTLE_MS / 1000} s${ATTACK_NICE === null ? '' : `, attack clients at nice ${ATTACK_NICE}`}; aims: peak RSS < ${RSS_LIMIT_MB} MB, back within ${RETURN_MB} MB of idle, health p99 < ${HEALTH_P99_MS} ms)`,
      ['attack', 'load', 'idle MB', 'peak MB', 'after MB', 'trims after', 'health p50 ms', 'p99 ms', 'max ms', 'probes failed'],
      rows.map((r) => [r.attack, String(r.load), String(r.idleRssMB), String(r.peakRssMB), String(r.afterRssMB), String(r.trims), String(r.healthP50Ms), String(r.healthP99Ms), String(r.healthMaxMs), `${r.healthFailures}/${r.healthProbes + r.healthFailures}`]),
    );
    printTable(
      'Health during each attack, ms: p50 / p99 / max (failed of probes), one probe every 20 ms per endpoint from a thread of its own',
      ['attack', 'load', ...Object.keys(rows[0]?.probes ?? {})],
      rows.map((r) => [r.attack, String(r.load), ...Object.values(r.probes).map((p) => `${p.p50Ms} / ${p.p99Ms} / ${p.maxMs} (${p.failures} of ${p.probes + p.failures}${p.failures ? `: ${Object.entries(p.failedBy).map(([k, n]) => `${n} ${k}`).join(', ')}` : ''})`)]),
    );
    printTable(
      'The main port\'s health probes in CPU: Perch\'s main thread\'s time on a CPU while each probe waited, ms p50 / p99 (the work ahead of the answer; the wall time above adds the waits for a core)',
      ['attack', 'load', 'main ready', 'main live'],
      rows.map((r) => [r.attack, String(r.load), ...['main ready', 'main live'].map((k) => `${r.probes[k]?.mainCpuP50Ms} / ${r.probes[k]?.mainCpuP99Ms}`)]),
    );
    printTable(
      'Who had the CPU during each attack, s (2 cores: twice the wall time at most): Perch\'s main thread on a CPU and runnable but waiting for one (kernel schedstat), Perch\'s other threads, the campaign\'s own process (attack clients, prober)',
      ['attack', 'load', 'wall', 'main on CPU', 'main waiting', 'Perch other threads', 'campaign'],
      rows.map((r) => [r.attack, String(r.load), String(r.cpu.wallS), String(r.cpu.mainOnCpuS), String(r.cpu.mainWaitS), String(r.cpu.perchOtherCpuS), String(r.cpu.campaignCpuS)]),
    );
    printTable(
      'Inference answers during each attack (Perch\'s /metrics: results, and errors by code; a request refused from its HTTP headers is not counted there) and the main thread\'s CPU per answer',
      ['attack', 'load', 'results', 'errors', 'main CPU per answer, us'],
      rows.map((r) => [
        r.attack, String(r.load), String(r.answers?.ok ?? '?'),
        r.answers ? Object.entries(r.answers.errors).map(([k, n]) => `${n} ${k}`).join(', ') || '0' : '?',
        r.answers && answered(r.answers) > 0 ? String(Math.round((r.cpu.mainOnCpuS * 1e6) / answered(r.answers))) : '-',
      ]),
    );
    const healthMet = (p: ProbeFigures | undefined): boolean | null => (p ? p.p99Ms < HEALTH_P99_MS && p.failures === 0 : null);
    const met = rows.map((r) => ({
      attack: r.attack,
      rss: r.peakRssMB < RSS_LIMIT_MB,
      returns: r.afterRssMB - r.idleRssMB <= RETURN_MB,
      health: healthMet(r.probes['main ready']),
      controlHealth: healthMet(r.probes['control ready']),
    }));
    printTable(
      'Where the memory is, MB (at the highest of the readings every 0.5 s during each attack / at its end / 30 s after its clients left; client: what the client budget held)',
      ['attack', 'RSS', 'V8 used', 'V8 total', 'external', 'client', 'C main heap', 'other anon', 'file'],
      rows.map((r) => [r.attack, ...(['rssMB', 'v8UsedMB', 'v8TotalMB', 'externalMB', 'clientMB', 'mainHeapMB', 'anonMB', 'fileMB'] as const).map((k) => `${r.atPeak?.[k] ?? '?'} / ${r.atEnd[k]} / ${r.after[k]}`)]),
    );
    const says = (ok: boolean | null): string => (ok === null ? 'not probed' : ok ? 'MET' : 'NOT MET');
    for (const m of met) console.log(`${m.attack}: RSS ${says(m.rss)}, returns ${says(m.returns)}, health main port ${says(m.health)}, control port ${says(m.controlHealth)}`);
    console.log(`perch_client_refusals_total after all attacks: ${refusals}`);
    writeRunFile('reliability', { loadavg: loadavg(), ...(ATTACK_NICE === null ? {} : { attackNice: ATTACK_NICE }), malloc: { arenaMax: process.env.MALLOC_ARENA_MAX, mmapThreshold: process.env.MALLOC_MMAP_THRESHOLD_ }, attackMs: ATTACK_MS, settleMs: SETTLE_MS, rows, met });
  } finally {
    await server.stop();
  }
  // Perch writes its turn log as it exits.
  if (TURN_LOG) {
    const log = readTurnLog(TURN_LOG);
    printTable(
      `The main loop's turns over 50 ms in each attack (${TURN_LOG}): the main thread's own CPU in them, and their wall time on a CPU / runnable but waiting for one / blocked`,
      ['attack', 'turns', 'CPU p50 / p99 / max ms', 'on CPU / waiting / blocked %', 'with a GC pause'],
      rows.map((r) => {
        const t = turnFigures(log, r.fromUs, r.toUs);
        return [r.attack, String(t.longTurns), `${t.cpuP50Ms} / ${t.cpuP99Ms} / ${t.cpuMaxMs}`, `${t.onCpuPct} / ${t.waitingPct} / ${t.blockedPct}`, String(t.withGc)];
      }),
    );
  }
}

await main();
