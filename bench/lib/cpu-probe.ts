// Issue 20: where a server's main thread spends its time per stream chunk (docs/benchmarks.md,
// "Stream chunks on the main thread"). Loaded into a benchmark's server process only (`node
// --import dist/bench/lib/cpu-probe.js ...`; never by Perch itself): the first SIGUSR2 starts V8's
// CPU profiler on the main thread (PERCH_BENCH_CPU_INTERVAL_US between samples, 100 unless set),
// the second stops it and writes <PERCH_BENCH_CPU_DIR>/cpu-<pid>.json: the profile's sampled
// time by function (self time; "(garbage collector)", "(program)" and "(idle)" are V8's own
// entries) and, for each file, the time of samples whose stack is in it at any depth. The window
// is exactly the measured round, not the process's start. With PERCH_BENCH_CPU_RAW set to a
// directory, each round's whole profile is kept there too (<pid>-<n>.cpuprofile, for DevTools).
import { mkdirSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';
import { join } from 'node:path';
import { isMainThread } from 'node:worker_threads';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

interface Profile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface CpuReport {
  /** Sampled µs in all, and of them idle (the thread waiting in its event loop). */
  sampledUs: number;
  idleUs: number;
  /** Self µs by function ("name file:line"), the largest first (300 at most). */
  top: Array<[string, number]>;
  /** µs of samples with the file anywhere on the stack, by file (the last two path parts). */
  inclusiveByFile: Array<[string, number]>;
}

// The main thread only: NODE_OPTIONS reaches the session threads too, and signals do not.
if (isMainThread) probe(process.env.PERCH_BENCH_CPU_DIR, Number(process.env.PERCH_BENCH_CPU_INTERVAL_US ?? 100));

const shortUrl = (url: string): string => url.split('/').slice(-2).join('/');

export function summarise(p: Profile): CpuReport {
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const self = new Map<string, number>();
  const inclusive = new Map<string, number>();
  let sampledUs = 0;
  let idleUs = 0;
  for (let i = 0; i < p.samples.length; i++) {
    // A sample's time is the delta to the next one (the last sample's to the end).
    const us = i + 1 < p.timeDeltas.length ? p.timeDeltas[i + 1]! : 0;
    const node = byId.get(p.samples[i]!)!;
    const f = node.callFrame;
    sampledUs += us;
    if (f.functionName === '(idle)') {
      idleUs += us;
      continue;
    }
    const key = `${f.functionName || '(anonymous)'} ${shortUrl(f.url)}:${f.lineNumber + 1}`;
    self.set(key, (self.get(key) ?? 0) + us);
    const files = new Set<string>();
    for (let id: number | undefined = node.id; id !== undefined; id = parent.get(id)) {
      const url = byId.get(id)!.callFrame.url;
      if (url) files.add(shortUrl(url));
    }
    for (const file of files) inclusive.set(file, (inclusive.get(file) ?? 0) + us);
  }
  const sorted = (m: Map<string, number>) => [...m].sort((a, b) => b[1] - a[1]);
  return { sampledUs, idleUs, top: sorted(self).slice(0, 300), inclusiveByFile: sorted(inclusive).slice(0, 100) };
}

function probe(dir: string | undefined, intervalUs: number): void {
  const session = new Session();
  session.connect();
  let running = false;
  let rounds = 0;
  process.on('SIGUSR2', () => {
    if (!running) {
      running = true;
      session.post('Profiler.enable', () =>
        session.post('Profiler.setSamplingInterval', { interval: intervalUs }, () => session.post('Profiler.start')));
      return;
    }
    running = false;
    session.post('Profiler.stop', (err, r) => {
      if (err || !dir) return;
      const profile = (r as { profile: Profile }).profile;
      const raw = process.env.PERCH_BENCH_CPU_RAW;
      if (raw) {
        mkdirSync(raw, { recursive: true });
        writeFileSync(join(raw, `${process.pid}-${++rounds}.cpuprofile`), JSON.stringify(profile));
      }
      const report = summarise(profile);
      writeFileSync(join(dir, `cpu-${process.pid}.json`), JSON.stringify(report));
    });
  });
}
