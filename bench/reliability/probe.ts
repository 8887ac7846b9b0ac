// What the reliability campaign watches while it attacks a Perch process: its resident memory
// (/proc, every 100 ms) and how fast GET /v2/health/ready answers (one keep-alive connection,
// one probe every 20 ms, each timed out after 5 s), as an orchestrator's health check would.
import { Agent, request } from 'node:http';
import { percentile } from '../lib/stats.js';
import type { PerchServer } from '../lib/perch-server.js';

export interface Watch {
  stop(): WatchFigures;
}

export interface WatchFigures {
  peakRssMB: number;
  healthP50Ms: number;
  healthP99Ms: number;
  healthMaxMs: number;
  healthProbes: number;
  /** Probes that failed (error, timeout, non-200). */
  healthFailures: number;
}

export const mb = (kib: number): number => Math.round((kib * 1024) / 1e6);

function probeOnce(agent: Agent, baseUrl: string): Promise<number | null> {
  const t0 = performance.now();
  return new Promise((resolve) => {
    const req = request(`${baseUrl}/v2/health/ready`, { agent, timeout: 5000 }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode === 200 ? performance.now() - t0 : null));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(null));
    req.end();
  });
}

export function watch(server: PerchServer): Watch {
  let peak = server.rssKiB();
  const rssTimer = setInterval(() => {
    try {
      peak = Math.max(peak, server.rssKiB());
    } catch {
      // the process is gone: the figures will say so
    }
  }, 100);
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const samples: number[] = [];
  let failures = 0;
  let running = true;
  void (async () => {
    while (running) {
      const t = await probeOnce(agent, server.baseUrl);
      if (t === null) failures++;
      else samples.push(t);
      await new Promise((r) => setTimeout(r, 20));
    }
  })();
  return {
    stop() {
      running = false;
      clearInterval(rssTimer);
      agent.destroy();
      const round = (x: number): number => Math.round(x * 10) / 10;
      return {
        peakRssMB: mb(peak),
        healthP50Ms: round(percentile(samples, 50)),
        healthP99Ms: round(percentile(samples, 99)),
        healthMaxMs: round(samples.length ? Math.max(...samples) : Number.NaN),
        healthProbes: samples.length,
        healthFailures: failures,
      };
    },
  };
}
