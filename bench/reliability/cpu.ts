// Who had the CPU during an attack (docs/reliability.md "The main port's p99: waiting for a
// core"). A health check on the main port waits for the turn of Perch's event loop it arrives
// in, and a turn is long either because the loop works or because its thread is runnable and
// waits for a core: on the 2-core machine the campaign shares with its own attack clients, the
// long turns of the main loop were mostly the latter. Read from outside the process, so Perch
// runs as it ships: the kernel's per-thread schedstat (time on a CPU and time runnable but
// waiting for one, in ns) for Perch's main thread, and utime + stime for Perch as a whole and
// for the campaign's own process (the attack clients and the prober). With PERCH_TURN_LOG, the
// main loop's long turns one by one as well (turn-log.ts, loaded into Perch).
import { readFileSync } from 'node:fs';
import { percentile } from '../lib/stats.js';
import type { TurnLogLine } from './turn-log.js';

/** CPU figures of one moment: differences of two give an attack's. */
export interface CpuSample {
  atMs: number;
  /** Perch's main thread (its event loop): on a CPU, and runnable but waiting for one. */
  mainOnCpuMs: number;
  mainWaitMs: number;
  /** Every thread of Perch (sessions, JSON parse thread, V8's helpers, the control listener). */
  perchCpuMs: number;
  /** This process: the attack clients, the prober thread. */
  campaignCpuMs: number;
}

export interface CpuFigures {
  /** Wall time between the two samples. */
  wallS: number;
  mainOnCpuS: number;
  mainWaitS: number;
  /** Perch's threads other than the main one. */
  perchOtherCpuS: number;
  campaignCpuS: number;
}

/** Clock ticks per second of /proc/<pid>/stat's utime and stime (USER_HZ: 100 on Linux). */
const USER_HZ = 100;

/** [on CPU, runnable waiting] in ms of thread `tid` of process `pid`. */
export function threadSchedMs(pid: number, tid: number): [number, number] {
  const [run = '0', wait = '0'] = readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'latin1').trim().split(' ');
  return [Number(run) / 1e6, Number(wait) / 1e6];
}

/** utime + stime of process `pid`, every thread, in ms. */
export function processCpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
  // Fields after the command (in parentheses, may hold spaces) start with the state, field 3: utime is 14, stime 15.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(fields[14 - 3]) + Number(fields[15 - 3])) * 1000) / USER_HZ;
}

export function cpuSample(perchPid: number): CpuSample {
  const [mainOnCpuMs, mainWaitMs] = threadSchedMs(perchPid, perchPid);
  const own = process.cpuUsage();
  return { atMs: performance.now(), mainOnCpuMs, mainWaitMs, perchCpuMs: processCpuMs(perchPid), campaignCpuMs: (own.user + own.system) / 1000 };
}

const s = (ms: number): number => Math.round(ms / 100) / 10;

export function cpuBetween(a: CpuSample, b: CpuSample): CpuFigures {
  const mainOnCpu = b.mainOnCpuMs - a.mainOnCpuMs;
  return {
    wallS: s(b.atMs - a.atMs),
    mainOnCpuS: s(mainOnCpu),
    mainWaitS: s(b.mainWaitMs - a.mainWaitMs),
    // utime + stime count in ticks of 10 ms and schedstat in ns: the difference is good to about 0.1 s.
    perchOtherCpuS: s(Math.max(0, b.perchCpuMs - a.perchCpuMs - mainOnCpu)),
    campaignCpuS: s(b.campaignCpuMs - a.campaignCpuMs),
  };
}

/** The main loop's long turns in one attack (turn-log.ts): what they were made of. */
export interface TurnFigures {
  /** Turns over 50 ms of wall time. */
  longTurns: number;
  /** The main thread's own CPU in them, ms. */
  cpuP50Ms: number;
  cpuP99Ms: number;
  cpuMaxMs: number;
  /** Shares of their wall time, %: on a CPU, runnable but waiting for one, neither (blocked). */
  onCpuPct: number;
  waitingPct: number;
  blockedPct: number;
  /** Of them, how many held a GC pause over 2 ms. */
  withGc: number;
}

const LONG_TURN_MS = 50;

/** The long turns of `lines` (turn-log.ts) that started between `fromUs` and `toUs` (monotonic). */
export function turnFigures(lines: readonly TurnLogLine[], fromUs: number, toUs: number): TurnFigures {
  const turns = lines.filter((l): l is Extract<TurnLogLine, { t: 'turn' }> => l.t === 'turn' && l.startUs >= fromUs && l.startUs < toUs && l.endUs - l.startUs > LONG_TURN_MS * 1000);
  const gcs = lines.filter((l) => l.t === 'gc');
  const cpu = turns.map((t) => t.cpuMs).sort((a, b) => a - b);
  const wall = turns.reduce((a, t) => a + (t.endUs - t.startUs) / 1000, 0);
  const onCpu = cpu.reduce((a, c) => a + c, 0);
  const waiting = turns.reduce((a, t) => a + t.waitMs, 0);
  const pct = (x: number): number => (wall > 0 ? Math.round((100 * x) / wall) : 0);
  const one = (x: number): number => Math.round(x * 10) / 10;
  return {
    longTurns: turns.length,
    cpuP50Ms: one(percentile(cpu, 50)),
    cpuP99Ms: one(percentile(cpu, 99)),
    cpuMaxMs: one(cpu.length ? (cpu[cpu.length - 1] as number) : Number.NaN),
    onCpuPct: pct(onCpu),
    waitingPct: pct(waiting),
    blockedPct: pct(Math.max(0, wall - onCpu - waiting)),
    withGc: turns.filter((t) => gcs.some((g) => g.startUs >= t.startUs && g.startUs <= t.endUs)).length,
  };
}

/** The lines of a turn log written by turn-log.ts. */
export function readTurnLog(path: string): TurnLogLine[] {
  return readFileSync(path, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as TurnLogLine);
}
