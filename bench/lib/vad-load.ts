// The closed-loop load generator of bench/throughput.ts: `connections` WebSockets with
// `perConnection` requests in flight on each; every client sends one silero-vad chunk (binary
// tensors, state zeros: the model used without state), awaits its answer, and sends again.
// Runs on the main thread or, through vad-load-worker.ts, on a worker thread.
import type { Tensor } from '../../runtime/tensor/tensor.js';
import { randomFp32 } from '../../test/helpers/models.js';
import { BenchWs, wsBinaryFrame } from './clients.js';

export interface VadLoadOptions {
  wsUrl: string;
  model: string;
  connections: number;
  perConnection: number;
  warmupMs: number;
  durationMs: number;
}

export interface VadLoadResult {
  /** Answers received inside the measured window. */
  completed: number;
  /** Latency (ms) of every request sent inside the measured window. */
  latencies: number[];
  windowMs: number;
  /** CPU time of this process (all its threads) during the window, ms. */
  cpuMs: number;
}

/** One stateless VAD request: 576 samples (512 + 64 of context), state zeros, sr 16000. */
export function vadStatelessInputs(seed: number, batch = 1): Tensor[] {
  return [
    randomFp32('input', [batch, 576], seed, -0.5, 0.5),
    { name: 'state', datatype: 'FP32', shape: [2, batch, 128], data: new Float32Array(2 * batch * 128) },
    { name: 'sr', datatype: 'INT64', shape: [], data: BigInt64Array.from([16000n]) },
  ];
}

export async function runVadLoad(o: VadLoadOptions, onWindowStart?: () => void): Promise<VadLoadResult> {
  const conns = await Promise.all(Array.from({ length: o.connections }, () => BenchWs.connect(o.wsUrl)));
  const latencies: number[] = [];
  let completed = 0;
  const start = performance.now();
  const from = start + o.warmupMs;
  const end = from + o.durationMs;
  let cpuAtStart: NodeJS.CpuUsage | null = null;
  const windowTimer = setTimeout(() => {
    cpuAtStart = process.cpuUsage();
    onWindowStart?.();
  }, o.warmupMs);

  const client = async (conn: BenchWs, slot: number, frame: Buffer): Promise<void> => {
    const id = `s${slot}`;
    for (;;) {
      const t0 = performance.now();
      if (t0 >= end) return;
      await conn.send(id, frame);
      const t1 = performance.now();
      if (t0 >= from) latencies.push(t1 - t0);
      if (t1 >= from && t1 <= end) completed++;
    }
  };
  const clients: Promise<void>[] = [];
  conns.forEach((conn, c) => {
    for (let k = 0; k < o.perConnection; k++) {
      const slot = c * o.perConnection + k;
      clients.push(client(conn, slot, wsBinaryFrame(`s${slot}`, o.model, vadStatelessInputs(5000 + slot))));
    }
  });
  await Promise.all(clients);
  clearTimeout(windowTimer);
  const cpu = process.cpuUsage(cpuAtStart ?? undefined);
  await Promise.all(conns.map((c) => c.close()));
  return { completed, latencies, windowMs: o.durationMs, cpuMs: (cpu.user + cpu.system) / 1000 };
}
