// Issue 20: does the loopback transport cost more when the server takes longer to answer? The
// transport floor of bench/overhead.ts is an echo server that answers at once; Perch answers a
// PP-OCR cls request 3-4 ms later, by which time the client (and the server's loop) have slept
// that long. Here one WebSocket client sends the same 110 KB binary frame to an echo server in
// its own process (this file with --serve) that answers at once, after sleeping D ms
// (Atomics.wait: its thread off the core), or after spinning D ms (its core busy), and puts the
// time it actually took in its answer. Per mode: p50 of (round trip - the server's own time),
// medians over interleaved rounds, and its excess over the instant echo: what the host adds to
// "outside the process" (bench/decompose.ts) because the answer came later, not what the server did.
//   node dist/bench/wake.js [--rounds 7] [--trips 300]
import { fork } from 'node:child_process';
import { loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { WebSocket, WebSocketServer } from 'ws';
import { numberFlag } from './lib/args.js';
import { saveSection } from './lib/results.js';
import { median, printTable } from './lib/stats.js';

const ROUNDS = numberFlag('rounds', 7);
const TRIPS = numberFlag('trips', 300);
const FRAME_BYTES = 110_700; // PP-OCR cls's 110,592 input bytes and a header

/** How the server spends its time before answering: [kind, ms]. kind 0 instant, 1 asleep, 2 spinning. */
const MODES: Array<{ name: string; kind: number; ms: number }> = [
  { name: 'at once (the echo floor)', kind: 0, ms: 0 },
  { name: 'asleep 0.5 ms', kind: 1, ms: 0.5 },
  { name: 'asleep 2 ms', kind: 1, ms: 2 },
  { name: 'asleep 4 ms', kind: 1, ms: 4 },
  { name: 'spinning 4 ms', kind: 2, ms: 4 },
];

function serve(): void {
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1', perMessageDeflate: false });
  const flag = new Int32Array(new SharedArrayBuffer(4));
  wss.on('listening', () => process.send!((wss.address() as { port: number }).port));
  wss.on('connection', (ws) => ws.on('message', (data: Buffer) => {
    const started = performance.now();
    const kind = data[0];
    const ms = (data[1] ?? 0) / 10;
    if (kind === 1) Atomics.wait(flag, 0, 0, ms); // nothing notifies it: a timed sleep
    else if (kind === 2) {
      const end = started + ms;
      while (performance.now() < end) {
        // the core stays busy
      }
    }
    const answer = Buffer.alloc(8);
    answer.writeDoubleLE(performance.now() - started);
    ws.send(answer);
  }));
  process.once('disconnect', () => process.exit(0));
}

async function main(): Promise<void> {
  const load = loadavg()[0]!.toFixed(2);
  console.log(`# wake (issue 20): 110 KB WebSocket round trips to an echo server that answers at once or later; ${ROUNDS} rounds x ${TRIPS} per mode, interleaved; load ${load}`);
  const server = fork(fileURLToPath(import.meta.url), ['--serve'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  try {
    const port = await new Promise<number>((resolve) => server.once('message', (p) => resolve(p as number)));
    const ws = new WebSocket(`ws://127.0.0.1:${port}`, { perMessageDeflate: false });
    await new Promise((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('error', reject);
    });
    const frame = Buffer.alloc(FRAME_BYTES);
    const trip = (kind: number, ms: number): Promise<number> => new Promise((resolve) => {
      frame[0] = kind;
      frame[1] = Math.round(ms * 10);
      const t = performance.now();
      ws.once('message', (answer: Buffer) => resolve(performance.now() - t - answer.readDoubleLE(0)));
      ws.send(frame);
    });
    const roundOf = async (m: (typeof MODES)[number], n: number): Promise<number> => {
      const samples: number[] = [];
      for (let i = 0; i < n; i++) samples.push(await trip(m.kind, m.ms));
      return median(samples);
    };
    for (const m of MODES) await roundOf(m, 100); // warm-up
    const p50s = MODES.map(() => [] as number[]);
    for (let r = 0; r < ROUNDS; r++) {
      const order = MODES.map((_, i) => i);
      if (r % 2 === 1) order.reverse();
      for (const i of order) p50s[i]!.push(await roundOf(MODES[i]!, TRIPS));
    }
    ws.close();
    const floor = median(p50s[0]!);
    const endLoad = loadavg()[0]!.toFixed(2);
    printTable(
      `Round trip minus the server's own time, ms (medians over ${ROUNDS} rounds of ${TRIPS}; load ${load} at start, ${endLoad} at the end)`,
      ['server answers', 'p50', 'over the echo floor', 'p50 per round'],
      MODES.map((m, i) => [m.name, median(p50s[i]!).toFixed(3), (median(p50s[i]!) - floor).toFixed(3), p50s[i]!.map((x) => x.toFixed(3)).join(' ')]),
    );
    saveSection('wake', {
      rounds: ROUNDS,
      trips: TRIPS,
      loadavg1m: Number(load),
      loadavg1mAtEnd: Number(endLoad),
      modes: MODES.map((m, i) => ({ name: m.name, p50: median(p50s[i]!), overFloor: median(p50s[i]!) - floor, perRoundP50: p50s[i]! })),
    }, 'node dist/bench/wake.js');
  } finally {
    server.kill('SIGKILL');
  }
}

if (process.argv[2] === '--serve') serve();
else await main();
