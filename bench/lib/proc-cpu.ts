// CPU time of a process and of each of its threads, from /proc (USER_HZ = 100 on Linux): where
// Perch's time goes under load (main thread vs session threads), next to the load generator's.
import { readdirSync, readFileSync } from 'node:fs';

/** utime + stime of /proc/<pid>/stat or /proc/<pid>/task/<tid>/stat, ms. */
function statCpuMs(path: string): number {
  const f = readFileSync(path, 'utf8').split(') ')[1]?.split(' ') ?? [];
  return (Number(f[11]) + Number(f[12])) * 10;
}

/** The whole process, all threads, ms. */
export function procCpuMs(pid: number): number {
  return statCpuMs(`/proc/${pid}/stat`);
}

/** Each thread of the process, ms, by thread id (the main thread's id is the pid). */
export function threadCpuMs(pid: number): Map<number, number> {
  const out = new Map<number, number>();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      out.set(Number(tid), statCpuMs(`/proc/${pid}/task/${tid}/stat`));
    } catch {
      // the thread ended between the listing and the read
    }
  }
  return out;
}

/** Between two snapshots: the main thread and the busiest other thread (a session), ms. */
export function threadSplit(pid: number, before: Map<number, number>, after: Map<number, number>): { main: number; busiestOther: number; total: number } {
  let busiestOther = 0;
  let total = 0;
  for (const [tid, ms] of after) {
    const d = ms - (before.get(tid) ?? 0);
    total += d;
    if (tid !== pid) busiestOther = Math.max(busiestOther, d);
  }
  return { main: (after.get(pid) ?? 0) - (before.get(pid) ?? 0), busiestOther, total };
}
