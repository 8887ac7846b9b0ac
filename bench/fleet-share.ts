// A device's share of `perch fleet serve`'s chunk answers (docs/fleet.md "serve"): one real device
// (`perch serve`, cloud sync on, the default window of 16) downloads the 4.7 MB PP-OCR detection
// model over MQTT chunks from a real `perch fleet serve` through a local Mosquitto, alone and
// while another device floods serve with requests for the same file (a raw mqtt.js client under
// its own device id, entitled to the model, asking for the whole file with 20 QoS 1 requests
// unacknowledged at a time and reading no chunk: test/helpers/chunk-flood.ts). Rounds alternate
// the order (alone, flood; flood, alone) so both see the same machine.
// Printed per download: the `fetch-chunks` step's time as the device logs it, serve's peak RSS
// and CPU during it, the flood's requests and what serve did with them (its `progress` line).
// Run: node dist/bench/fleet-share.js. PERCH_BENCH_ROUNDS (3); PERCH_BENCH_SERVE_CLI runs
// `fleet serve` from another build's dist/bin/perch.js (before/after a change, same device);
// PERCH_BENCH_FETCH_TIMEOUT_MS (90,000) ends a download that has not finished;
// PERCH_BENCH_SERVE_NODE_ARGS (e.g. '--cpu-prof --cpu-prof-dir=/tmp/p') goes to serve's node.
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { startChunkFlood, type ChunkFlood } from '../test/helpers/chunk-flood.js';
import { startMosquitto, type Mosquitto } from '../test/helpers/mosquitto.js';
import { MODEL_FILES } from '../test/helpers/paths.js';
import { spawnLogged, startDevice, type Device, type LoggedProcess, type LogLine } from './lib/mqtt-device.js';
import { CLI } from './lib/perch-server.js';
import { procCpuMs } from './lib/proc-cpu.js';

const ROUNDS = Number(process.env.PERCH_BENCH_ROUNDS ?? 3);
const SERVE_CLI = process.env.PERCH_BENCH_SERVE_CLI ?? CLI;
const FETCH_TIMEOUT_MS = Number(process.env.PERCH_BENCH_FETCH_TIMEOUT_MS ?? 90_000);
const FILE = MODEL_FILES.ocrDet;
const SIZE = readFileSync(FILE).length;
const CHUNK = 64 * 1024;
const CHUNKS = Math.ceil(SIZE / CHUNK);
const PREFIX = 'perch/v1';
let dropsSeen = 0;

function rssKiB(pid: number): number {
  const m = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m?.[1] ?? 0);
}

async function push(broker: Mosquitto, store: string, deviceId: string, version: number): Promise<void> {
  const p = spawnLogged(
    [CLI, 'fleet', 'push', '--url', broker.url, '--store', store, '--force', '--device', deviceId, '--model', 'det', '--version', String(version), '--file', FILE, '--chunk-size', String(CHUNK)],
    {},
    store,
  );
  const code = await p.exited;
  if (code !== 0) throw new Error(`perch fleet push exited with ${code}`);
}

interface Download {
  flood: boolean;
  fetchMs: number | null;
  servePeakRssMiB: number;
  serveCpuMs: number;
  floodRequests: number;
  load1: number;
}

async function download(broker: Mosquitto, store: string, serve: LoggedProcess, version: number, flood: boolean): Promise<Download> {
  const deviceId = `share-${randomUUID().slice(0, 8)}`;
  let device: Device | null = null;
  let flooder: ChunkFlood | null = null;
  let peak = 0;
  const sampler = setInterval(() => (peak = Math.max(peak, rssKiB(serve.pid))), 50);
  try {
    device = await startDevice({ brokerUrl: broker.url, deviceId, config: {}, env: { PERCH_ALLOW_UNSIGNED_MODELS: 'true' } });
    await device.waitLine((l) => l.msg === 'connected to the broker', 10_000, 'device connected');
    if (flood) {
      const floodId = `flood-${randomUUID().slice(0, 8)}`;
      await push(broker, store, floodId, version);
      flooder = await startChunkFlood({ url: broker.url, prefix: PREFIX, deviceId: floodId, name: 'det', version, count: CHUNKS });
      const f = flooder;
      while (f.sent < 200) await new Promise((r) => setTimeout(r, 20)); // the flood is under way
    }
    peak = rssKiB(serve.pid);
    const cpu0 = procCpuMs(serve.pid);
    await push(broker, store, deviceId, version);
    const isFetch = (l: LogLine) => l.msg === 'model update step done' && l.step === 'fetch-chunks';
    const failed = (l: LogLine) => l.msg === 'model update step failed';
    const end = await device.waitLine((l) => isFetch(l) || failed(l), FETCH_TIMEOUT_MS, 'fetch-chunks').catch(() => null);
    const cpu = procCpuMs(serve.pid) - cpu0;
    const refusedGood = serve.lines.filter((l) => l.deviceId === deviceId && typeof l.reason === 'string');
    if (refusedGood.length) console.log(`  serve refused the downloading device: ${JSON.stringify(refusedGood)}`);
    const retries = device.lines.filter((l) => l.msg === 'chunks did not arrive in time; asking again').length;
    if (retries) console.log(`  the device asked again after its chunk timeout ${retries} time(s)`);
    const drops = broker.log().split('\n').filter((l) => /dropped/i.test(l));
    if (drops.length > dropsSeen) console.log(`  broker: ${drops.slice(dropsSeen, dropsSeen + 3).join(' | ')} (${drops.length - dropsSeen} lines)`);
    dropsSeen = drops.length;
    return {
      flood, fetchMs: end && isFetch(end) ? (end.ms as number) : null, servePeakRssMiB: peak / 1024, serveCpuMs: cpu,
      floodRequests: flooder?.sent ?? 0, load1: loadavg()[0] ?? 0,
    };
  } finally {
    clearInterval(sampler);
    await flooder?.stop();
    await device?.stop();
  }
}

async function main(): Promise<void> {
  console.log(`# fleet share benchmark: node ${process.version}, ${cpus().length} cpus, serve from ${SERVE_CLI}`);
  console.log(`# ${FILE.split('/').pop()}: ${(SIZE / 1e6).toFixed(1)} MB, ${CHUNKS} chunks of ${CHUNK} B; device window 16; ${ROUNDS} rounds`);
  const broker = await startMosquitto({ autosaveChanges: 1_000_000_000, extraConfig: 'set_tcp_nodelay true' });
  const store = mkdtempSync(join(tmpdir(), 'perch-bench-share-'));
  let serve: LoggedProcess | null = null;
  const runs: Download[] = [];
  try {
    const nodeArgs = (process.env.PERCH_BENCH_SERVE_NODE_ARGS ?? '').split(' ').filter(Boolean);
    serve = spawnLogged([...nodeArgs, SERVE_CLI, 'fleet', 'serve', '--url', broker.url, '--store', store, '--progress-ms', '1000'], {}, store);
    await serve.waitLine((l) => l.msg === 'fleet serve ready', 15_000, 'fleet serve ready');
    let version = 0;
    for (let r = 0; r < ROUNDS; r++) {
      for (const flood of r % 2 === 0 ? [false, true] : [true, false]) {
        const d = await download(broker, store, serve, ++version, flood);
        runs.push(d);
        const progress = serve.lines.filter((l) => l.msg === 'progress').at(-1);
        console.log(
          `  round ${r + 1} ${flood ? 'flood' : 'alone'}: fetch ${d.fetchMs === null ? `not done in ${FETCH_TIMEOUT_MS} ms` : `${d.fetchMs} ms`}, ` +
            `serve peak RSS ${d.servePeakRssMiB.toFixed(0)} MiB, serve CPU ${d.serveCpuMs} ms, flood requests ${d.floodRequests}, load ${d.load1.toFixed(1)}; ` +
            `serve so far: ${JSON.stringify({ chunkRequests: progress?.chunkRequests, chunksSent: progress?.chunksSent, ignored: progress?.ignored })}`,
        );
      }
    }
  } finally {
    await serve?.stop();
    await broker.close();
    rmSync(store, { recursive: true, force: true });
  }
  const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;
  for (const flood of [false, true]) {
    const xs = runs.filter((d) => d.flood === flood);
    const done = xs.flatMap((d) => (d.fetchMs === null ? [] : [d.fetchMs]));
    console.log(
      `${flood ? 'under flood' : 'alone      '}: fetch median ${done.length ? med(done) : '-'} ms (${done.join(', ')}; ${xs.length - done.length} not done), ` +
        `serve peak RSS max ${Math.max(...xs.map((d) => d.servePeakRssMiB)).toFixed(0)} MiB`,
    );
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
