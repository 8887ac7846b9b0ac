// Issue 20: what a thread hop costs on this host, without Perch: round trips between the main
// thread and a worker thread, in interleaved rounds of one run, by
//   - postMessage of a small object each way (how the session thread gets a batch and answers),
//   - postMessage of 110,592 bytes (the PP-OCR cls input) copied, and transferred,
//   - a SharedArrayBuffer flag with Atomics.notify, the worker blocked in Atomics.wait and the
//     main thread awaiting Atomics.waitAsync (a handoff without libuv's async wake-ups).
// p50/p99 per method (medians over rounds). Compare with the WebSocket echo floor and the
// inline-vs-worker difference of bench/overhead.ts, and with the same figures of other days.
// By default each trip follows a 1 ms pause (threads asleep, as between one client's requests);
// --gap-ms 0 runs them back to back (threads awake).
//   node dist/bench/hop.js [--rounds 5] [--trips 2000] [--gap-ms 1]
import { loadavg } from 'node:os';
import { Worker } from 'node:worker_threads';
import { numberFlag } from './lib/args.js';
import { saveSection } from './lib/results.js';
import { median, percentile, printTable } from './lib/stats.js';

const ROUNDS = numberFlag('rounds', 5);
const TRIPS = numberFlag('trips', 2000);
/**
 * Pause between round trips (ms), so that both threads go to sleep as they do between the
 * requests of one client at concurrency 1: each trip then pays the wake-ups. 0: back to back.
 */
const GAP_MS = numberFlag('gap-ms', 1);
const gap = (): Promise<void> | undefined => (GAP_MS > 0 ? new Promise((r) => setTimeout(r, GAP_MS)) : undefined);
const BYTES = 110_592;

// The worker answers each message in kind; in 'atomics' mode it waits on the shared flag instead.
const WORKER = `
const { parentPort, workerData } = require('node:worker_threads');
if (workerData && workerData.flag) {
  const flag = new Int32Array(workerData.flag);
  // flag[0]: 1 = a request is there, 2 = the answer is there, 3 = stop.
  for (;;) {
    Atomics.wait(flag, 0, 0);
    if (Atomics.load(flag, 0) === 3) break;
    Atomics.store(flag, 0, 2);
    Atomics.notify(flag, 0);
    Atomics.wait(flag, 0, 2);
    if (Atomics.load(flag, 0) === 3) break;
  }
} else {
  parentPort.on('message', (m) => {
    if (m && m.buf instanceof ArrayBuffer) parentPort.postMessage(m, [m.buf]);
    else parentPort.postMessage(m);
  });
}
`;

type Method = 'postMessage small' | 'postMessage 110 KB copied' | 'postMessage 110 KB transferred' | 'Atomics notify/waitAsync';
const METHODS: Method[] = ['postMessage small', 'postMessage 110 KB copied', 'postMessage 110 KB transferred', 'Atomics notify/waitAsync'];

async function messageTrips(worker: Worker, method: Method): Promise<number[]> {
  const out: number[] = [];
  let buf = new ArrayBuffer(BYTES);
  const copied = new Uint8Array(BYTES);
  for (let i = 0; i < TRIPS; i++) {
    await gap();
    const t = performance.now();
    const answer = new Promise<{ buf?: ArrayBuffer }>((resolve) => worker.once('message', resolve));
    if (method === 'postMessage small') worker.postMessage({ type: 'run', id: i });
    else if (method === 'postMessage 110 KB copied') worker.postMessage({ type: 'run', id: i, data: copied });
    else worker.postMessage({ type: 'run', id: i, buf }, [buf]);
    const m = await answer;
    if (m.buf) buf = m.buf;
    out.push(performance.now() - t);
  }
  return out;
}

async function atomicsTrips(flag: Int32Array): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < TRIPS; i++) {
    await gap();
    const t = performance.now();
    Atomics.store(flag, 0, 1);
    Atomics.notify(flag, 0);
    const w = (Atomics as unknown as { waitAsync(a: Int32Array, i: number, v: number): { async: boolean; value: Promise<string> | string } }).waitAsync(flag, 0, 1);
    if (w.async) await w.value;
    // Let the worker go back to waiting for the next request.
    Atomics.store(flag, 0, 0);
    Atomics.notify(flag, 0);
    out.push(performance.now() - t);
  }
  return out;
}

async function main(): Promise<void> {
  const load = loadavg()[0]!.toFixed(2);
  console.log(`# thread hop (issue 20): ${ROUNDS} rounds x ${TRIPS} round trips per method, interleaved, ${GAP_MS} ms pause before each; load ${load}`);
  const messages = new Worker(WORKER, { eval: true });
  const sab = new SharedArrayBuffer(4);
  const flag = new Int32Array(sab);
  const atomics = new Worker(WORKER, { eval: true, workerData: { flag: sab } });
  const p50s = new Map<Method, number[]>(METHODS.map((m) => [m, []]));
  const p99s = new Map<Method, number[]>(METHODS.map((m) => [m, []]));
  try {
    for (const m of METHODS) if (m !== 'Atomics notify/waitAsync') await messageTrips(messages, m); // warm-up
    await atomicsTrips(flag);
    for (let r = 0; r < ROUNDS; r++) {
      for (const m of r % 2 === 0 ? METHODS : [...METHODS].reverse()) {
        const trips = m === 'Atomics notify/waitAsync' ? await atomicsTrips(flag) : await messageTrips(messages, m);
        p50s.get(m)!.push(median(trips));
        p99s.get(m)!.push(percentile(trips, 99));
      }
    }
  } finally {
    Atomics.store(flag, 0, 3);
    Atomics.notify(flag, 0);
    await messages.terminate();
    await atomics.terminate();
  }
  printTable(
    `Main thread <-> worker thread round trip, ms (medians over ${ROUNDS} rounds of ${TRIPS}, ${GAP_MS} ms pause before each; load ${load})`,
    ['method', 'p50', 'p99', 'p50 per round'],
    METHODS.map((m) => [m, median(p50s.get(m)!).toFixed(4), median(p99s.get(m)!).toFixed(4), p50s.get(m)!.map((x) => x.toFixed(4)).join(' ')]),
  );
  saveSection('hop', {
    rounds: ROUNDS,
    trips: TRIPS,
    gapMs: GAP_MS,
    loadavg1m: Number(load),
    methods: METHODS.map((m) => ({ method: m, p50: median(p50s.get(m)!), p99: median(p99s.get(m)!), perRoundP50: p50s.get(m)! })),
  }, 'node dist/bench/hop.js');
}

await main();
