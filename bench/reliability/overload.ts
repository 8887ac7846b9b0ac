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
// The never-reading clients and the infer flood run against a hand-written minimal server too,
// right after Perch (sides.ts; PERCH_CAMPAIGN_SIDES picks them), and a last table gives Perch /
// minimal for the main port's health: the limit on this host beside Perch's figure. Figures the
// minimal server has no source for (Perch's /metrics but its answer counts, the control port) are '-'.
// Prints a table and writes build/bench/reliability.json.
// Run: npm run build && node dist/bench/reliability/overload.js   (PERCH_ATTACKS, PERCH_CAMPAIGN_SIDES, PERCH_ATTACK_MS, PERCH_SETTLE_MS, PERCH_MAX_CLIENT_MB, PERCH_MAX_QUEUE_MB, PERCH_ATTACK_NICE)
import { existsSync, rmSync } from 'node:fs';
import { loadavg } from 'node:os';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SHIPPED_MODELS } from '../../test/helpers/paths.js';
import { startPerch, type PerchServer } from '../lib/perch-server.js';
import { writeRunFile } from '../lib/results.js';
import { printTable, sleep } from '../lib/stats.js';
import { answerCounts, answered, answersBetween, type AnswerCounts } from './answers.js';
import { ATTACK_NICE, niceAttackers, nicesSummary } from './attack-nice.js';
import { flood, heldBodies, largeJson, slowHeaders, wsNonReaders, type Attack } from './attacks.js';
import { cpuBetween, cpuSample, readTurnLog, turnFigures, type CpuFigures } from './cpu.js';
import { memoryBreakdown, sampleAtPeak, type MemoryBreakdown } from './memory.js';
import { mb, watch, type ProbeFigures, type WatchFigures } from './probe.js';
import { fig, MINIMAL_FLOOD, MINIMAL_SEQUENCES, ratio, SIDES, startMinimal, type Side } from './sides.js';

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
  /** Perch, or the minimal server that speaks the attack's wire (sides.ts). */
  side: Side;
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
  /** malloc_trim calls after the attack's clients left (perch_memory_trims_total): did the idle collector see a burst? NaN on the minimal side. */
  trims: number;
  /** The attack's window on the monotonic clock (to cut the turn log). */
  fromUs: number;
  toUs: number;
}

// Each attack, and the minimal server that speaks its wire (null: Perch alone).
const attacks: Array<[string, (port: number, wsUrl: string) => Promise<Attack> | Attack, string[] | null]> = [
  ['300 WebSocket clients that never read', (_p, ws) => wsNonReaders(ws, 300), MINIMAL_SEQUENCES],
  ['60 HTTP bodies of 31 MiB held open', (p) => heldBodies(p, 60, 31 * 1024 * 1024), null],
  ['JSON bodies of 12 MB short numbers, 8 at a time', (p) => largeJson(p, 8, 12_000_000), null],
  ['infer flood: 200 HTTP + 100 WebSocket clients pipelining', (p, ws) => flood(p, ws, 200, 100), MINIMAL_FLOOD],
  ['1,000 connections sending headers a byte a second', (p) => slowHeaders(p, 1000), null],
];
const selected = attacks.filter(([name]) => !ONLY || ONLY.some((o) => name.includes(o)));

// A signal (a time limit) must not leave the Perch child running: exit runs perch-server's kill.
for (const sig of ['SIGTERM', 'SIGINT'] as const) process.once(sig, () => process.exit(1));

/** The turn log of a side's server (the minimal servers' beside Perch's, so each is cut by its own attacks). */
const turnLogOf = (side: Side, attack?: string): string | null =>
  TURN_LOG && (side === 'perch' ? TURN_LOG : `${TURN_LOG}.minimal-${selected.findIndex(([n]) => n === attack)}`);

/** One attack against one side's server: the figures of a Row. */
async function runAttack(side: Side, server: PerchServer, name: string, start: (port: number, wsUrl: string) => Promise<Attack> | Attack, proberNice: number | undefined): Promise<Row> {
  // V8's figures from /metrics on the control listener: the main port may not answer at the end of an attack.
  const metricsUrl = server.controlPort !== null ? `http://127.0.0.1:${server.controlPort}` : server.baseUrl;
  const idleRssMB = mb(server.rssKiB());
  console.log(`${name} [${side}]: starting (idle RSS ${idleRssMB} MB)`);
  const trimsFrom = side === 'perch' ? await server.metric('perch_memory_trims_total') : Number.NaN;
  const w = watch(server, proberNice);
  const attack = await start(server.port, server.wsUrl);
  console.log(`${name} [${side}]: clients in place`);
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
  if (ATTACK_NICE !== null) console.log(`${name} [${side}]: threads by nice: campaign ${nicesSummary('self')} (the prober among them), server ${nicesSummary(server.pid)}`);
  const figures = await w.stop();
  attack.leave();
  await sleep(SETTLE_MS);
  const after = await memoryBreakdown(server.pid, metricsUrl, server.rssKiB());
  const trims = side === 'perch' ? (await server.metric('perch_memory_trims_total')) - trimsFrom : Number.NaN;
  const row: Row = { attack: name, side, idleRssMB, ...figures, afterRssMB: after.rssMB, load: loadAtEnd, counts: attack.counts, atPeak, atEnd, after, trims, cpu, answers, fromUs, toUs };
  console.log(`${name} [${side}]: ${JSON.stringify(row)}`);
  return row;
}

async function main(): Promise<void> {
  const perch = SIDES.includes('perch')
    // The control listener on (docs/reliability.md): its health answers are measured beside the main port's.
    ? await startPerch({ repository: SHIPPED_MODELS, readyTimeoutMs: 120_000, nodeArgs: NODE_ARGS, config: {
      server: { control: { port: 0 }, ...(MAX_CLIENT_MB ? { maxClientBytes: MAX_CLIENT_MB * 1024 * 1024 } : {}) },
      ...(MAX_QUEUE_MB ? { models: { overrides: { 'pp-ocr-cls': { batching: { maxQueueBytes: MAX_QUEUE_MB * 1024 * 1024 } } } } } : {}),
    } })
    : null;
  if (perch) console.log(`perch serving on port ${perch.port} (control listener on ${perch.controlPort}) after ${Math.round(perch.startMs)} ms`);
  // The minimal servers, one per attack that has one, all started before the attack clients are
  // niced (a child inherits its creator's nice), each with a turn log of its own when asked.
  const minimals = new Map<string, PerchServer>();
  try {
    if (SIDES.includes('minimal')) {
      for (const [name, , command] of selected) {
        if (!command) continue;
        const log = turnLogOf('minimal', name);
        if (log) rmSync(log, { force: true });
        const m = await startMinimal(command, NODE_ARGS, log ? { PERCH_TURN_LOG: log } : undefined);
        minimals.set(name, m);
        console.log(`minimal server for '${name}' serving on port ${m.port} after ${Math.round(m.startMs)} ms`);
      }
    }
    // PERCH_ATTACK_NICE: the attack clients at a lower priority from here on, the prober not (attack-nice.ts).
    const proberNice = ATTACK_NICE === null ? undefined : niceAttackers(ATTACK_NICE);
    const rows: Row[] = [];
    await sleep(3000); // settle after start-up
    for (const [name, start] of selected) {
      for (const side of SIDES) {
        const server = side === 'perch' ? perch : minimals.get(name);
        if (server) rows.push(await runAttack(side, server, name, start, proberNice));
      }
    }
    const refusals = perch ? await perch.metric('perch_client_refusals_total') : Number.NaN;
    const who = (r: Row): string[] => [r.attack, r.side];
    printTable(
      `Overload campaign (attack ${ATTACK_MS / 1000} s, settle ${SETTLE_MS / 1000} s${ATTACK_NICE === null ? '' : `, attack clients at nice ${ATTACK_NICE}`}; aims: peak RSS < ${RSS_LIMIT_MB} MB, back within ${RETURN_MB} MB of idle, health p99 < ${HEALTH_P99_MS} ms)`,
      ['attack', 'side', 'load', 'idle MB', 'peak MB', 'after MB', 'trims after', 'health p50 ms', 'p99 ms', 'max ms', 'probes failed'],
      rows.map((r) => [...who(r), String(r.load), String(r.idleRssMB), String(r.peakRssMB), String(r.afterRssMB), fig(r.trims), String(r.healthP50Ms), String(r.healthP99Ms), String(r.healthMaxMs), `${r.healthFailures}/${r.healthProbes + r.healthFailures}`]),
    );
    const endpoints = [...new Set(rows.flatMap((r) => Object.keys(r.probes)))];
    printTable(
      'Health during each attack, ms: p50 / p99 / max (failed of probes), one probe every 20 ms per endpoint from a thread of its own',
      ['attack', 'side', 'load', ...endpoints],
      rows.map((r) => [...who(r), String(r.load), ...endpoints.map((k) => r.probes[k]).map((p) => (p ? `${p.p50Ms} / ${p.p99Ms} / ${p.maxMs} (${p.failures} of ${p.probes + p.failures}${p.failures ? `: ${Object.entries(p.failedBy).map(([k, n]) => `${n} ${k}`).join(', ')}` : ''})` : '-'))]),
    );
    printTable(
      'The main port\'s health probes in CPU: the server\'s main thread\'s time on a CPU while each probe waited, ms p50 / p99 (the work ahead of the answer; the wall time above adds the waits for a core)',
      ['attack', 'side', 'load', 'main ready', 'main live'],
      rows.map((r) => [...who(r), String(r.load), ...['main ready', 'main live'].map((k) => `${r.probes[k]?.mainCpuP50Ms} / ${r.probes[k]?.mainCpuP99Ms}`)]),
    );
    printTable(
      'Who had the CPU during each attack, s (2 cores: twice the wall time at most): the server\'s main thread on a CPU and runnable but waiting for one (kernel schedstat), its other threads, the campaign\'s own process (attack clients, prober)',
      ['attack', 'side', 'load', 'wall', 'main on CPU', 'main waiting', 'other threads', 'campaign'],
      rows.map((r) => [...who(r), String(r.load), String(r.cpu.wallS), String(r.cpu.mainOnCpuS), String(r.cpu.mainWaitS), String(r.cpu.perchOtherCpuS), String(r.cpu.campaignCpuS)]),
    );
    printTable(
      'Inference answers during each attack (the server\'s /metrics: results, and errors by code; a request Perch refused from its HTTP headers is not counted there) and the main thread\'s CPU per answer',
      ['attack', 'side', 'load', 'results', 'errors', 'main CPU per answer, us'],
      rows.map((r) => [
        ...who(r), String(r.load), String(r.answers?.ok ?? '?'),
        r.answers ? Object.entries(r.answers.errors).map(([k, n]) => `${n} ${k}`).join(', ') || '0' : '?',
        r.answers && answered(r.answers) > 0 ? String(Math.round((r.cpu.mainOnCpuS * 1e6) / answered(r.answers))) : '-',
      ]),
    );
    const healthMet = (p: ProbeFigures | undefined): boolean | null => (p ? p.p99Ms < HEALTH_P99_MS && p.failures === 0 : null);
    const met = rows.map((r) => ({
      attack: r.attack,
      side: r.side,
      rss: r.peakRssMB < RSS_LIMIT_MB,
      returns: r.afterRssMB - r.idleRssMB <= RETURN_MB,
      health: healthMet(r.probes['main ready']),
      controlHealth: healthMet(r.probes['control ready']),
    }));
    printTable(
      'Where the memory is, MB (at the highest of the readings every 0.5 s during each attack / at its end / 30 s after its clients left; client: what the client budget held; \'-\': not in the minimal server\'s /metrics)',
      ['attack', 'side', 'RSS', 'V8 used', 'V8 total', 'external', 'client', 'C main heap', 'other anon', 'file'],
      rows.map((r) => [...who(r), ...(['rssMB', 'v8UsedMB', 'v8TotalMB', 'externalMB', 'clientMB', 'mainHeapMB', 'anonMB', 'fileMB'] as const).map((k) => `${r.atPeak ? fig(r.atPeak[k]) : '?'} / ${fig(r.atEnd[k])} / ${fig(r.after[k])}`)]),
    );
    const pairs = selected.map(([name]) => [rows.find((r) => r.attack === name && r.side === 'perch'), rows.find((r) => r.attack === name && r.side === 'minimal')] as const).filter(([p, m]) => p && m);
    if (pairs.length) {
      const perSecond = (r: Row): number => (r.answers && r.cpu.wallS > 0 ? Math.round(r.answers.ok / r.cpu.wallS) : Number.NaN);
      printTable(
        'The main port\'s health against the minimal server under the same attack (sides.ts: the limit on this host), main ready: Perch / minimal',
        ['attack', 'load', 'p99 ms', 'p99 ratio', 'p50 ms', 'p50 ratio', 'main CPU ahead of a probe p99 ms', 'main on CPU / waiting s', 'results a second'],
        pairs.map(([p, m]) => {
          const [pr, mr] = [p!.probes['main ready'], m!.probes['main ready']];
          return [p!.attack, `${p!.load} / ${m!.load}`, `${pr?.p99Ms} / ${mr?.p99Ms}`, ratio(pr?.p99Ms, mr?.p99Ms), `${pr?.p50Ms} / ${mr?.p50Ms}`, ratio(pr?.p50Ms, mr?.p50Ms),
            `${pr?.mainCpuP99Ms} / ${mr?.mainCpuP99Ms}`, `${p!.cpu.mainOnCpuS} / ${p!.cpu.mainWaitS}; ${m!.cpu.mainOnCpuS} / ${m!.cpu.mainWaitS}`, `${fig(perSecond(p!))} / ${fig(perSecond(m!))}`];
        }),
      );
    }
    const says = (ok: boolean | null): string => (ok === null ? 'not probed' : ok ? 'MET' : 'NOT MET');
    for (const m of met) console.log(`${m.attack} [${m.side}]: RSS ${says(m.rss)}, returns ${says(m.returns)}, health main port ${says(m.health)}, control port ${says(m.controlHealth)}`);
    if (perch) console.log(`perch_client_refusals_total after all attacks: ${refusals}`);
    writeRunFile('reliability', { loadavg: loadavg(), sides: SIDES, ...(ATTACK_NICE === null ? {} : { attackNice: ATTACK_NICE }), malloc: { arenaMax: process.env.MALLOC_ARENA_MAX, mmapThreshold: process.env.MALLOC_MMAP_THRESHOLD_ }, attackMs: ATTACK_MS, settleMs: SETTLE_MS, rows, met });
    // Each server writes its turn log as it exits.
    await Promise.all([perch?.stop(), ...[...minimals.values()].map((m) => m.stop())]);
    if (TURN_LOG) {
      printTable(
        `The main loop's turns over 50 ms in each attack (${TURN_LOG}, the minimal servers' in ${TURN_LOG}.minimal-<n>): the main thread's own CPU in them, and their wall time on a CPU / runnable but waiting for one / blocked`,
        ['attack', 'side', 'turns', 'CPU p50 / p99 / max ms', 'on CPU / waiting / blocked %', 'with a GC pause'],
        rows.map((r) => {
          const log = turnLogOf(r.side, r.attack)!;
          const t = turnFigures(existsSync(log) ? readTurnLog(log) : [], r.fromUs, r.toUs);
          return [...who(r), String(t.longTurns), `${t.cpuP50Ms} / ${t.cpuP99Ms} / ${t.cpuMaxMs}`, `${t.onCpuPct} / ${t.waitingPct} / ${t.blockedPct}`, String(t.withGc)];
        }),
      );
    }
  } finally {
    await Promise.all([perch?.stop(), ...[...minimals.values()].map((m) => m.stop())]);
  }
}

await main();
