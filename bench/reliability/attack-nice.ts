// PERCH_ATTACK_NICE=<n> (opt-in; docs/reliability.md "The main port's p99: waiting for a core"):
// the campaign's attack clients at a lower scheduling priority, so they do not take the cores
// from Perch as they do on the 2-core machine they share (on a device the attackers are other
// machines). The attack clients run in the campaign's own process (no child processes), on its
// main thread, with V8's helper threads and libuv's pool doing their collections and lookups.
// On Linux a nice value is per thread: setpriority on a thread id changes that thread alone, and
// a thread (or a child process) created later inherits its creator's. So the campaign lowers
// every thread it has once Perch runs (spawned from the main thread before: Perch keeps its own
// nice), and the prober, a thread the main thread creates for each attack after that, sets its
// own back (probe-thread.ts): lowering a nice again needs CAP_SYS_NICE, raising it does not.
import { readdirSync, readFileSync } from 'node:fs';
import { getPriority, setPriority } from 'node:os';

/** The nice value asked for the attack clients, or null (the default: the campaign as it was). */
export const ATTACK_NICE: number | null = process.env.PERCH_ATTACK_NICE ? Number(process.env.PERCH_ATTACK_NICE) : null;
if (ATTACK_NICE !== null && !(Number.isInteger(ATTACK_NICE) && ATTACK_NICE >= -20 && ATTACK_NICE <= 19)) {
  throw new Error(`PERCH_ATTACK_NICE must be an integer from -20 to 19, not ${process.env.PERCH_ATTACK_NICE}`);
}

/** The nice of every thread of `pid` (field 19 of /proc/<pid>/task/<tid>/stat), by thread id. */
export function threadNices(pid: number | 'self'): Map<number, number> {
  const out = new Map<number, number>();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'latin1');
      // Fields after the command (in parentheses, may hold spaces) start with the state, field 3.
      out.set(Number(tid), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19 - 3]));
    } catch {
      // the thread ended meanwhile
    }
  }
  return out;
}

/** "19 x 11, 0 x 1": how many threads of `pid` have each nice value. */
export function nicesSummary(pid: number | 'self'): string {
  const byNice = new Map<number, number>();
  for (const n of threadNices(pid).values()) byNice.set(n, (byNice.get(n) ?? 0) + 1);
  return [...byNice].sort((a, b) => b[0] - a[0]).map(([n, k]) => `${n} x ${k}`).join(', ');
}

/**
 * Sets every thread of this process to `nice` and returns the main thread's nice before, which
 * the prober restores for itself. Call it after Perch is spawned (a child inherits its creator's nice).
 */
export function niceAttackers(nice: number): number {
  const before = getPriority(0);
  for (const tid of threadNices('self').keys()) setPriority(tid, nice);
  return before;
}
