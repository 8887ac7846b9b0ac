// The health prober of the reliability campaign, on a thread of its own (probe.ts starts it):
// the attacks run in the campaign's main thread, and a flood of 300 clients kept that event loop
// so busy that probes there waited on the campaign, not on Perch (36 probes in 15 s where 700
// were due). Each target gets one keep-alive connection and one probe every INTERVAL_MS, each
// timed out after TIMEOUT_MS, as an orchestrator's check would.
import { Agent, request } from 'node:http';
import { parentPort, workerData } from 'node:worker_threads';

export interface ProbeTarget {
  name: string;
  url: string;
}

export interface ProbeSamples {
  name: string;
  /** Latency of each probe answered 200, ms. */
  samples: number[];
  /** Probes that failed (error, timeout, non-200). */
  failures: number;
  /** The failures by kind: 'timeout', 'error', or the HTTP status. */
  failedBy: Record<string, number>;
}

const INTERVAL_MS = 20;
const TIMEOUT_MS = 5000;

/** The latency in ms, or why the probe failed. */
function probeOnce(agent: Agent, url: string): Promise<number | string> {
  const t0 = performance.now();
  return new Promise((resolve) => {
    let timedOut = false;
    const req = request(url, { agent, timeout: TIMEOUT_MS }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode === 200 ? performance.now() - t0 : String(res.statusCode)));
    });
    req.on('timeout', () => {
      timedOut = true;
      req.destroy();
    });
    req.on('error', () => resolve(timedOut ? 'timeout' : 'error'));
    req.end();
  });
}

const targets = (workerData as { targets: ProbeTarget[] }).targets;
let running = true;
const loops = targets.map(async (t): Promise<ProbeSamples> => {
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const out: ProbeSamples = { name: t.name, samples: [], failures: 0, failedBy: {} };
  while (running) {
    const ms = await probeOnce(agent, t.url);
    if (typeof ms === 'number') {
      out.samples.push(ms);
    } else {
      out.failures++;
      out.failedBy[ms] = (out.failedBy[ms] ?? 0) + 1;
    }
    await new Promise((r) => setTimeout(r, INTERVAL_MS));
  }
  agent.destroy();
  return out;
});

parentPort?.once('message', () => {
  running = false;
  void Promise.all(loops).then((results) => {
    parentPort?.postMessage(results);
    parentPort?.close();
  });
});
