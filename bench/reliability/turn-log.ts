// Loaded into Perch with --import when the campaign runs with PERCH_TURN_LOG=<file> (overload.ts;
// docs/reliability.md "The main port's p99: waiting for a core"): a 5 ms timer on the main thread
// notes every gap of it over 30 ms (a long turn of the event loop) with what the thread's
// schedstat says of it (time on a CPU, time runnable but waiting for one), and every GC pause
// over 2 ms. Times are monotonic microseconds, the clock of process.hrtime in every process, so
// the campaign can cut the log by attack. Written once a second and when Perch exits (a Perch
// stopped with SIGKILL after a slow shutdown keeps what was written). Not part of Perch: the
// campaign's instrument.
import { appendFileSync, readFileSync } from 'node:fs';
import { PerformanceObserver, performance, type PerformanceEntry } from 'node:perf_hooks';
import { isMainThread } from 'node:worker_threads';

/** One line of the log. */
export type TurnLogLine =
  | { t: 'turn'; startUs: number; endUs: number; cpuMs: number; waitMs: number }
  | { t: 'gc'; startUs: number; ms: number; kind: number | undefined };

const TICK_MS = 5;
const LONG_US = 30_000;
const GC_MS = 2;
const FLUSH_MS = 1000;

const file = process.env.PERCH_TURN_LOG;
if (isMainThread && file) {
  const lines: string[] = [];
  const monoUs = (): number => Number(process.hrtime.bigint() / 1000n);
  const statPath = `/proc/self/task/${process.pid}/schedstat`;
  /** [on CPU, runnable waiting] in ms. */
  const sched = (): [number, number] => {
    const [run = '0', wait = '0'] = readFileSync(statPath, 'latin1').split(' ');
    return [Number(run) / 1e6, Number(wait) / 1e6];
  };
  let last = monoUs();
  let [lastCpu, lastWait] = sched();
  const timer = setInterval(() => {
    const now = monoUs();
    const [cpu, wait] = sched();
    if (now - last > LONG_US) {
      const line: TurnLogLine = { t: 'turn', startUs: last, endUs: now, cpuMs: cpu - lastCpu, waitMs: wait - lastWait };
      lines.push(JSON.stringify(line));
    }
    last = now;
    lastCpu = cpu;
    lastWait = wait;
  }, TICK_MS);
  timer.unref();
  const offsetUs = monoUs() - performance.now() * 1000;
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      if (e.duration <= GC_MS) continue;
      const line: TurnLogLine = { t: 'gc', startUs: Math.round(offsetUs + e.startTime * 1000), ms: e.duration, kind: (e as PerformanceEntry & { detail?: { kind?: number } | null }).detail?.kind };
      lines.push(JSON.stringify(line));
    }
  }).observe({ entryTypes: ['gc'] });
  const flush = (): void => {
    if (lines.length) appendFileSync(file, `${lines.splice(0).join('\n')}\n`);
  };
  setInterval(flush, FLUSH_MS).unref();
  process.on('exit', flush);
}
