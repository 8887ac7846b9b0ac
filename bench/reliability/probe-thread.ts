// The health prober of the reliability campaign, on a thread of its own (probe.ts starts it):
// the attacks run in the campaign's main thread, and a flood of 300 clients kept that event loop
// so busy that probes there waited on the campaign, not on Perch (36 probes in 15 s where 700
// were due). Each target gets one keep-alive connection and one probe every INTERVAL_MS, each
// timed out after TIMEOUT_MS, as an orchestrator's check would. Each probe also notes how much
// CPU Perch's main thread had while it waited (its schedstat, read before and after): the work
// the loop did ahead of the answer, which the machine's load does not inflate as it does the
// wall time (docs/reliability.md "Health behind the flood's connections"). With the attack
// clients at a lower priority (PERCH_ATTACK_NICE, attack-nice.ts) this thread starts with their
// nice, inherited from the main thread that creates it, and sets its own back to the campaign's.
import { readFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { setPriority } from 'node:os';
import { parentPort, workerData } from 'node:worker_threads';

export interface ProbeTarget {
  name: string;
  url: string;
}

export interface ProbeSamples {
  name: string;
  /** Latency of each probe answered 200, ms. */
  samples: number[];
  /** For the same probes: Perch's main thread's time on a CPU while each waited, ms (empty without its pid). */
  cpuSamples: number[];
  /** Probes that failed (error, timeout, non-200). */
  failures: number;
  /** The failures by kind: 'timeout', 'error', or the HTTP status. */
  failedBy: Record<string, number>;
}

const INTERVAL_MS = 20;
const TIMEOUT_MS = 5000;

const { targets, perchPid, nice } = workerData as { targets: ProbeTarget[]; perchPid?: number; nice?: number };
if (nice !== undefined) {
  try {
    setPriority(0, nice); // this thread alone (Linux)
  } catch (e) {
    throw new Error(`the prober could not set its nice back to ${nice} (lowering a nice needs CAP_SYS_NICE: run PERCH_ATTACK_NICE as root): ${(e as Error).message}`, { cause: e });
  }
}

/** Perch's main thread's time on a CPU so far, ms (NaN without its pid or once it is gone). */
function mainCpuMs(): number {
  if (perchPid === undefined) return Number.NaN;
  try {
    return Number(readFileSync(`/proc/${perchPid}/task/${perchPid}/schedstat`, 'latin1').split(' ')[0]) / 1e6;
  } catch {
    return Number.NaN;
  }
}

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

let running = true;
const loops = targets.map(async (t): Promise<ProbeSamples> => {
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const out: ProbeSamples = { name: t.name, samples: [], cpuSamples: [], failures: 0, failedBy: {} };
  while (running) {
    const cpu0 = mainCpuMs();
    const ms = await probeOnce(agent, t.url);
    const cpu = mainCpuMs() - cpu0;
    if (typeof ms === 'number') {
      out.samples.push(ms);
      if (Number.isFinite(cpu)) out.cpuSamples.push(cpu);
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
