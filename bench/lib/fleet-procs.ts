// The processes of bench/fleet-scale.ts and what it reads from them: `perch fleet serve` and
// `perch fleet simulate` children (line-process.ts), the broker's pid, CPU time and RSS from
// /proc, and `perch fleet` commands run in this process.
import { readdirSync, readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { run } from '../../cloud-sync/fleet/cli/main.js';
import { CLI, cleanEnv } from '../../test/helpers/perch-process.js';
import { LineProcess } from './line-process.js';
import { procCpuMs } from './proc-cpu.js';
import { sleep } from './stats.js';

export const load = (): string => loadavg().map((x) => x.toFixed(2)).join(' ');
export const load1m = (): number => loadavg()[0] ?? 0;

/** Polls `cond` until it holds; throws after timeoutMs, saying how far it got (`detail`). */
export async function until<T>(what: string, timeoutMs: number, cond: () => T | undefined | null | false, everyMs = 500, detail?: () => string): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = cond();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`fleet-scale: timed out after ${timeoutMs / 1000} s waiting for ${what}${detail ? ` (${detail()})` : ''}`);
    await sleep(everyMs);
  }
}

export function openFilesLimit(): number {
  const m = /^Max open files\s+(\d+|unlimited)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
  return m?.[1] === 'unlimited' ? Infinity : Number(m?.[1] ?? 1024);
}

/** The broker's pid (test/helpers/mosquitto.ts does not hand it out): the process started with its config file. */
export function pidOf(configFile: string): number {
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      if (readFileSync(`/proc/${d}/cmdline`, 'utf8').includes(configFile)) return Number(d);
    } catch {
      // gone meanwhile
    }
  }
  throw new Error('fleet-scale: broker pid not found');
}

export const procCpu = procCpuMs;

/**
 * CPU time of a PostgreSQL server, ms: the postmaster started on `port`, its live children
 * (the backends serve's pools hold, the WAL writer, the checkpointer) and the children it reaped.
 */
export function pgServerCpuMs(port: number): number {
  const procs = readdirSync('/proc').filter((d) => /^\d+$/.test(d));
  const stat = (pid: string): string[] => readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
  let master: string | undefined;
  for (const d of procs) {
    try {
      const argv = readFileSync(`/proc/${d}/cmdline`, 'utf8').split('\0');
      if (argv[0]?.endsWith('postgres') && argv.includes('-p') && argv[argv.indexOf('-p') + 1] === String(port)) master = d;
    } catch {
      // gone meanwhile
    }
  }
  if (!master) return NaN;
  const m = stat(master);
  // utime stime cutime cstime: fields 14-17 of stat, 11-14 after the command.
  let ticks = Number(m[11]) + Number(m[12]) + Number(m[13]) + Number(m[14]);
  for (const d of procs) {
    try {
      const f = stat(d);
      if (f[1] === master) ticks += Number(f[11]) + Number(f[12]);
    } catch {
      // gone meanwhile
    }
  }
  return ticks * 10;
}

export function procMiB(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m?.[1] ?? 0) / 1024;
}

/** A `perch fleet` command in this process; its stdout, or throws with its stderr. */
export async function fleet(args: string[]): Promise<string> {
  let out = '';
  let err = '';
  const w = (f: (s: string) => void) => ({ write: (s: string) => (f(s), true) }) as unknown as NodeJS.WritableStream;
  const code = await run(args, w((s) => (out += s)), w((s) => (err += s)));
  if (code !== 0) throw new Error(`perch fleet ${args[0]}: exit ${code}: ${err}`);
  return out.trim();
}

/** PERCH_BENCH_FLEET_PROFILE_DIR: each serve writes a V8 CPU profile there when it stops (where its time goes). */
const PROFILE_DIR = process.env.PERCH_BENCH_FLEET_PROFILE_DIR;

/** A serve worker: random client id and clean session, so a stopped one leaves the share group at once. */
export function serveProcess(name: string, url: string, store: string, db?: string, extra: string[] = []): LineProcess {
  const prof = PROFILE_DIR ? ['--cpu-prof', '--cpu-prof-dir', PROFILE_DIR, '--cpu-prof-name', `${name}.cpuprofile`] : [];
  return new LineProcess(name, process.execPath, [...prof, CLI, 'fleet', 'serve', '--url', url, '--store', store, '--progress-ms', '1000', ...(db ? ['--db', db] : []), ...extra],
    ['"progress"', '"rollout state"', '"rollout wave"', 'fleet serve ready', 'chunk request ignored'], cleanEnv());
}

export interface SimSpread {
  devices: number;
  procs: number;
  connectRate: number;
}

/** `devices` simulated devices over `procs` processes, sending `eps` events per second each. */
export function simProcesses(s: SimSpread, url: string, pub: string, eps: number): LineProcess[] {
  const per = Math.ceil(s.devices / s.procs);
  return Array.from({ length: s.procs }, (_, k) => {
    const n = Math.min(per, s.devices - k * per);
    return new LineProcess(`sim-${k}`, process.execPath, [
      CLI, 'fleet', 'simulate', '--devices', String(n), '--broker', url, '--id-prefix', `s${k}-`, '--labels', 'site=bench',
      '--trusted-keys', pub, '--events-per-second', String(eps), '--report-ms', '0', '--progress-ms', '1000', '--connect-rate', String(s.connectRate),
    ], ['"progress"', 'simulate ready', 'simulate stopped'], cleanEnv());
  }).filter((_, k) => k * per < s.devices);
}

export const online = (sims: readonly LineProcess[]): number => sims.reduce((n, p) => n + Number(p.last('progress')?.online ?? 0), 0);

/** Events (stored + duplicates) a serve had handled at its last progress line, and when. */
/**
 * A serve worker's counters: `stored`, events new to the fleet store (the distinct (device, seq)
 * events it added); `handled`, those plus the copies it found already stored (re-sends).
 */
export function served(p: LineProcess): { stored: number; handled: number; t: number } {
  const l = p.last('progress');
  const stored = Number(l?.eventsStored ?? 0);
  return { stored, handled: stored + Number(l?.duplicates ?? 0), t: Number(l?.time ?? Date.now()) };
}
