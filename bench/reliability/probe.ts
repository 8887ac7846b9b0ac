// What the reliability campaign watches while it attacks a Perch process: its resident memory
// (/proc, every 100 ms) and how fast the health endpoints answer (probe-thread.ts: a thread of
// its own, one keep-alive connection per endpoint, a probe every 20 ms, each timed out after 5 s),
// on the main port and, when Perch runs one, on the control listener (server.control.port).
import { Worker } from 'node:worker_threads';
import { percentile } from '../lib/stats.js';
import type { PerchServer } from '../lib/perch-server.js';
import type { ProbeSamples, ProbeTarget } from './probe-thread.js';

export interface Watch {
  stop(): Promise<WatchFigures>;
}

export interface ProbeFigures {
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  probes: number;
  /** Probes that failed (error, timeout, non-200). */
  failures: number;
  /** The failures by kind: 'timeout', 'error', or the HTTP status (503 from the control port: the main loop stalled). */
  failedBy: Record<string, number>;
  /** Perch's main thread's time on a CPU while a probe waited, ms: p50 / p99 (probe-thread.ts). */
  mainCpuP50Ms: number;
  mainCpuP99Ms: number;
}

export interface WatchFigures {
  peakRssMB: number;
  /** GET /v2/health/ready on the main port (the figures the campaign table shows). */
  healthP50Ms: number;
  healthP99Ms: number;
  healthMaxMs: number;
  healthProbes: number;
  healthFailures: number;
  /** Every endpoint probed, by name ("main ready", "control live", ...). */
  probes: Record<string, ProbeFigures>;
}

export const mb = (kib: number): number => Math.round((kib * 1024) / 1e6);

/** The endpoints probed: live and ready on the main port, and on the control port when there is one. */
export function probeTargets(server: PerchServer): ProbeTarget[] {
  const targets: ProbeTarget[] = [
    { name: 'main ready', url: `${server.baseUrl}/v2/health/ready` },
    { name: 'main live', url: `${server.baseUrl}/v2/health/live` },
  ];
  if (server.controlPort !== null) {
    const base = `http://127.0.0.1:${server.controlPort}`;
    targets.push({ name: 'control ready', url: `${base}/v2/health/ready` }, { name: 'control live', url: `${base}/v2/health/live` });
  }
  return targets;
}

const round = (x: number): number => Math.round(x * 10) / 10;

function figures(s: ProbeSamples): ProbeFigures {
  return {
    p50Ms: round(percentile(s.samples, 50)),
    p99Ms: round(percentile(s.samples, 99)),
    maxMs: round(s.samples.length ? Math.max(...s.samples) : Number.NaN),
    probes: s.samples.length,
    failures: s.failures,
    failedBy: s.failedBy,
    mainCpuP50Ms: round(percentile(s.cpuSamples, 50)),
    mainCpuP99Ms: round(percentile(s.cpuSamples, 99)),
  };
}

/** `proberNice`: the nice the prober sets for itself (the campaign's, when its attack clients run lower: attack-nice.ts). */
export function watch(server: PerchServer, proberNice?: number): Watch {
  let peak = server.rssKiB();
  const rssTimer = setInterval(() => {
    try {
      peak = Math.max(peak, server.rssKiB());
    } catch {
      // the process is gone: the figures will say so
    }
  }, 100);
  const prober = new Worker(new URL('./probe-thread.js', import.meta.url), { workerData: { targets: probeTargets(server), perchPid: server.pid, nice: proberNice } });
  return {
    async stop() {
      clearInterval(rssTimer);
      const results = await new Promise<ProbeSamples[]>((resolve, reject) => {
        prober.once('message', resolve);
        prober.once('error', reject);
        prober.postMessage('stop');
      });
      const probes: Record<string, ProbeFigures> = {};
      for (const r of results) probes[r.name] = figures(r);
      const main = probes['main ready'] as ProbeFigures;
      return {
        peakRssMB: mb(peak),
        healthP50Ms: main.p50Ms,
        healthP99Ms: main.p99Ms,
        healthMaxMs: main.maxMs,
        healthProbes: main.probes,
        healthFailures: main.failures,
        probes,
      };
    },
  };
}
