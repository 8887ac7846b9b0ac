// The soak of the reliability campaign (issue 12; docs/reliability.md): a real Perch process
// under steady mixed load for a long time, RSS and latency over time. 10 minutes by default,
// an hour with `--minutes 60` (or PERCH_SOAK_MS=3600000). Load: real-time VAD streams over
// WebSocket (sequences started, fed and ended in turn), classifier requests over HTTP, events
// emitted over WebSocket. Figure: RSS growth after the 5-minute mark (or half-way, for shorter runs),
// aim < 5% for an hour: the highest RSS of the last five minutes (of the last half of what follows
// the mark, for shorter runs) against the highest of the five minutes after the mark. RSS is a
// sawtooth of V8's and glibc's collections (20-30 MB on a 200 MB process, docs/reliability.md), so
// one reading a minute compared with another says more about where each fell in its tooth than
// about growth; each minute's peak is read every 100 ms (probe.ts watch). The one-reading figure
// is printed beside it. Prints a table per minute and writes build/bench/soak.json.
// Each row also counts Perch's threads by name (a thread started under load is a step in RSS,
// not a creep) and says how large V8's young generation is (its regrowth was the step of the
// 30 November soaks, docs/reliability.md "The soak's step"); with PERCH_SOAK_SMAPS_DIR=<dir>
// each minute's /proc/<pid>/smaps is copied there, so a step can be traced to the mappings that
// grew (diff two minutes' files). Perch runs with npm start's environment and node flags.
// Run: npm run build && node dist/bench/reliability/soak.js [--minutes 60]
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { join } from 'node:path';
import WebSocket from 'ws';
import { encodeBinaryData } from '../../runtime/tensor/binary-codec.js';
import { clsInput, vadInputs } from '../../test/helpers/models.js';
import { SHIPPED_MODELS } from '../../test/helpers/paths.js';
import { flag } from '../lib/args.js';
import { NPM_START_ENV, NPM_START_NODE_ARGS, startPerch } from '../lib/perch-server.js';
import { writeRunFile } from '../lib/results.js';
import { percentile, printTable, sleep } from '../lib/stats.js';
import { memoryBreakdown, type MemoryBreakdown } from './memory.js';
import { mb, watch } from './probe.js';

const minutes = flag('minutes');
const SOAK_MS = minutes !== undefined ? Number(minutes) * 60_000 : Number(process.env.PERCH_SOAK_MS ?? 600_000);
if (!(SOAK_MS > 0)) throw new Error('--minutes takes a positive number (the soak runs 10 minutes without it)');
const STREAMS = Number(process.env.PERCH_SOAK_STREAMS ?? 20);
// Perch as it ships: npm start's environment (glibc's malloc settings; one set in the shell wins,
// to weigh another) and its node flags (V8's young generation, docs/reliability.md).
for (const [k, v] of Object.entries(NPM_START_ENV)) process.env[k] ??= v;
const SAMPLE_MS = Math.min(60_000, SOAK_MS / 10);
const GROWTH_AIM = 0.05;

for (const sig of ['SIGTERM', 'SIGINT'] as const) process.once(sig, () => process.exit(1));

/** Perch's threads by name (/proc/<pid>/task/<tid>/comm), e.g. { node: 1, 'libuv-worker': 4 }. */
function threadsByName(pid: number): Record<string, number> {
  const out: Record<string, number> = {};
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    let name = '?';
    try {
      name = readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim();
    } catch {
      // the thread ended between the listing and the read
    }
    out[name] = (out[name] ?? 0) + 1;
  }
  return out;
}

const smapsDir = process.env.PERCH_SOAK_SMAPS_DIR;

function frame(header: Record<string, unknown>, parts: Uint8Array[]): Buffer {
  const json = Buffer.from(JSON.stringify(header));
  const len = Buffer.alloc(4);
  len.writeUInt32LE(json.length, 0);
  return Buffer.concat([len, json, ...parts]);
}

async function main(): Promise<void> {
  const server = await startPerch({ repository: SHIPPED_MODELS, readyTimeoutMs: 120_000, nodeArgs: NPM_START_NODE_ARGS });
  let stop = false;
  const latencies: number[] = [];
  let errors = 0;
  try {
    // VAD streams: one chunk per 36 ms per stream (576 samples at 16 kHz), a new sequence every 200 chunks.
    const vad = vadInputs(5).filter((t) => t.name !== 'state');
    const parts = vad.map(encodeBinaryData);
    const inputs = vad.map((t, i) => ({ name: t.name, shape: t.shape, datatype: t.datatype, parameters: { binary_data_size: parts[i]!.byteLength } }));
    const sockets = await Promise.all(Array.from({ length: STREAMS }, () => new Promise<WebSocket>((resolve, reject) => {
      const ws = new WebSocket(server.wsUrl, { perMessageDeflate: false });
      ws.once('open', () => resolve(ws));
      ws.once('error', reject);
    })));
    const sent = new Map<string, number>();
    sockets.forEach((ws, s) => {
      let n = 0;
      ws.on('message', (d: Buffer) => {
        const text = d.toString('utf8', 4, Math.min(d.length, 300));
        const id = /"id":"([^"]+)"/.exec(text)?.[1];
        const t0 = id ? sent.get(id) : undefined;
        if (id && t0 !== undefined) {
          latencies.push(performance.now() - t0);
          sent.delete(id);
        }
        if (!/"ok":true/.test(text)) errors++;
      });
      const tick = setInterval(() => {
        if (stop) return clearInterval(tick);
        const k = n++ % 200;
        const id = `${s}-${n}`;
        sent.set(id, performance.now());
        const seq = { sequence_id: `soak-${s}`, ...(k === 0 ? { sequence_start: true } : {}), ...(k === 199 ? { sequence_end: true } : {}) };
        ws.send(frame({ id, op: 'infer', model: 'silero-vad', inputs, parameters: seq }, parts));
        if (n % 25 === 0) ws.send(JSON.stringify({ id: `e${s}-${n}`, op: 'emit', type: 'soak.tick', payload: { s, n } }));
      }, 36);
    });
    // Classifier over HTTP: 10 requests a second.
    const cls = clsInput(2)[0]!;
    const clsBytes = encodeBinaryData(cls);
    const header = Buffer.from(JSON.stringify({ inputs: [{ name: 'x', shape: cls.shape, datatype: 'FP32', parameters: { binary_data_size: clsBytes.byteLength } }] }));
    const body = Buffer.concat([header, clsBytes]);
    const agent = new Agent({ keepAlive: true, maxSockets: 4 });
    const http = setInterval(() => {
      if (stop) return clearInterval(http);
      const req = request(`${server.baseUrl}/v2/models/pp-ocr-cls/infer`, {
        method: 'POST', agent, headers: { 'inference-header-content-length': header.length, 'content-length': body.length },
      }, (res) => {
        if (res.statusCode !== 200) errors++;
        res.resume();
      });
      req.on('error', () => errors++);
      req.end(body);
    }, 100);

    // Each row also says where the memory is (memory.ts): what grows, if anything does.
  const rows: Array<{ minute: number; rssMB: number; peakRssMB: number; p50Ms: number; p99Ms: number; healthP99Ms: number; errors: number; memory: MemoryBreakdown; threads: Record<string, number> }> = [];
    if (smapsDir) mkdirSync(smapsDir, { recursive: true });
    const started = performance.now();
    while (performance.now() - started < SOAK_MS) {
      const w = watch(server);
      await sleep(SAMPLE_MS);
      const h = await w.stop();
      const lat = latencies.splice(0);
      rows.push({
        minute: Math.round((performance.now() - started) / 600) / 100,
        rssMB: mb(server.rssKiB()), peakRssMB: h.peakRssMB, p50Ms: Math.round(percentile(lat, 50) * 10) / 10, p99Ms: Math.round(percentile(lat, 99) * 10) / 10,
        healthP99Ms: h.healthP99Ms, errors,
        memory: await memoryBreakdown(server.pid, server.baseUrl, server.rssKiB()),
        threads: threadsByName(server.pid),
      });
      if (smapsDir) writeFileSync(join(smapsDir, `minute-${String(rows.length).padStart(3, '0')}.smaps`), readFileSync(`/proc/${server.pid}/smaps`));
      console.log(JSON.stringify(rows[rows.length - 1]));
    }
    stop = true;
    sockets.forEach((ws) => ws.close());
    agent.destroy();
    const markMin = Math.min(5, (SOAK_MS / 60_000) / 2);
    const mark = rows.find((r) => r.minute >= markMin) ?? rows[0]!;
    const last = rows[rows.length - 1]!;
    const pointGrowth = (last.rssMB - mark.rssMB) / mark.rssMB;
    const after = rows.filter((r) => r.minute > mark.minute);
    const windowMin = Math.min(5, (last.minute - mark.minute) / 2);
    const firstWindow = after.filter((r) => r.minute <= mark.minute + windowMin);
    const lastWindow = after.filter((r) => r.minute > last.minute - windowMin);
    const firstPeak = Math.max(...firstWindow.map((r) => r.peakRssMB));
    const lastPeak = Math.max(...lastWindow.map((r) => r.peakRssMB));
    const growth = (lastPeak - firstPeak) / firstPeak;
    printTable(`Soak: ${SOAK_MS / 60_000} min, ${STREAMS} VAD streams + 10 HTTP/s + events`, ['minute', 'RSS MB', 'peak RSS MB', 'V8 used MB', 'V8 young MB', 'external MB', 'C main heap MB', 'other anon MB', 'VAD p50 ms', 'VAD p99 ms', 'health p99 ms', 'errors so far'],
      rows.map((r) => [String(r.minute), String(r.rssMB), String(r.peakRssMB), String(r.memory.v8UsedMB), String(r.memory.v8YoungMB), String(r.memory.externalMB), String(r.memory.mainHeapMB), String(r.memory.anonMB),
        String(r.p50Ms), String(r.p99Ms), String(r.healthP99Ms), String(r.errors)]));
    console.log(`RSS growth after minute ${mark.minute}: peak ${firstPeak} MB in minutes ${mark.minute}-${(mark.minute + windowMin).toFixed(2)}, ${lastPeak} MB in the last ${windowMin.toFixed(2)}: ${(growth * 100).toFixed(1)}% (aim < ${GROWTH_AIM * 100}% over an hour): ${growth < GROWTH_AIM ? 'MET' : 'NOT MET'}`);
    console.log(`One reading each (minute ${mark.minute} against the last): ${(pointGrowth * 100).toFixed(1)}%`);
    // Beside the figure, not instead of it: V8 sizes the main thread's young generation itself
    // (it regrows by survival after a memory-reducing collection, up to a maximum set by the
    // host's memory), so a step in it is told apart from anything else that grew.
    const firstYoung = Math.max(...firstWindow.map((r) => r.memory.v8YoungMB));
    const lastYoung = Math.max(...lastWindow.map((r) => r.memory.v8YoungMB));
    const outsideYoung = (lastPeak - lastYoung - (firstPeak - firstYoung)) / (firstPeak - firstYoung);
    console.log(`V8's young generation (main thread, reserved): ${firstYoung} MB in minutes ${mark.minute}-${(mark.minute + windowMin).toFixed(2)}, ${lastYoung} MB in the last ${windowMin.toFixed(2)}; the peaks less it: ${(outsideYoung * 100).toFixed(1)}%`);
    writeRunFile('soak', { soakMs: SOAK_MS, streams: STREAMS, rows, growth, firstPeakMB: firstPeak, lastPeakMB: lastPeak, pointGrowth, firstYoungMB: firstYoung, lastYoungMB: lastYoung, outsideYoung });
  } finally {
    stop = true;
    await server.stop();
  }
}

await main();
