// Issue 20: what a server's main thread allocates per stream chunk, and how often V8 collects
// (docs/benchmarks.md, "Stream chunks on the main thread"). Loaded into a benchmark's server
// process only (`node --import dist/bench/lib/alloc-probe.js ...`; never by Perch itself): the
// first SIGUSR2 starts V8's sampling heap profiler with the objects that garbage collection has
// freed kept in the profile (so it counts what was allocated, not what is still alive) and
// counts GC events; the second stops both and writes <PERCH_BENCH_ALLOC_DIR>/alloc-<pid>.json:
// sampled bytes in all, by function, and the GC events by kind.
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';
import { join } from 'node:path';
import { PerformanceObserver, constants } from 'node:perf_hooks';
import { isMainThread } from 'node:worker_threads';

interface ProfileNode {
  callFrame: { functionName: string; url: string; lineNumber: number };
  selfSize: number;
  children: ProfileNode[];
}

export interface AllocReport {
  bytes: number;
  /** Sampled bytes by function ("name file:line"), the largest first (40 at most). */
  top: Array<[string, number]>;
  gc: { minor: number; major: number; incremental: number; other: number };
}

// The main thread only: NODE_OPTIONS reaches the session threads too, and signals do not.
if (isMainThread) probe(process.env.PERCH_BENCH_ALLOC_DIR);

function probe(dir: string | undefined): void {
  const session = new Session();
  session.connect();
  let gc: AllocReport['gc'] | null = null;
  const observer = new PerformanceObserver((list) => {
    if (!gc) return;
    for (const e of list.getEntries()) {
      const kind = ((e as unknown as { detail?: { kind?: number } }).detail)?.kind;
      if (kind === constants.NODE_PERFORMANCE_GC_MINOR) gc.minor++;
      else if (kind === constants.NODE_PERFORMANCE_GC_MAJOR) gc.major++;
      else if (kind === constants.NODE_PERFORMANCE_GC_INCREMENTAL) gc.incremental++;
      else gc.other++;
    }
  });
  observer.observe({ entryTypes: ['gc'] });

  process.on('SIGUSR2', () => {
    if (!gc) {
      gc = { minor: 0, major: 0, incremental: 0, other: 0 };
      // 4 KiB between samples: V8 scales each sample up to the bytes it stands for.
      session.post('HeapProfiler.startSampling', { samplingInterval: 4096, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true } as object);
      return;
    }
    const counted = gc;
    gc = null;
    session.post('HeapProfiler.stopSampling', (err, r) => {
      if (err || !dir) return;
      const byFn = new Map<string, number>();
      let bytes = 0;
      const walk = (n: ProfileNode): void => {
        const f = n.callFrame;
        const key = `${f.functionName || '(anonymous)'} ${f.url.split('/').slice(-2).join('/')}:${f.lineNumber + 1}`;
        byFn.set(key, (byFn.get(key) ?? 0) + n.selfSize);
        bytes += n.selfSize;
        for (const c of n.children) walk(c);
      };
      walk((r as { profile: { head: ProfileNode } }).profile.head);
      const report: AllocReport = { bytes, top: [...byFn].sort((a, b) => b[1] - a[1]).slice(0, 40), gc: counted };
      writeFileSync(join(dir, `alloc-${process.pid}.json`), JSON.stringify(report));
    });
  });
}
