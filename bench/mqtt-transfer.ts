// Model transfer benchmark (issue 5): the 10.8 MB PP-OCR recognition model moved over MQTT by
// Perch's model update, next to raw mqtt.js moving the same chunks through the same Mosquitto in
// the same run (docs/design.md house style 10).
//   Perch: a real device (`perch serve`, cloud sync on) and a real `perch fleet serve`; `perch
//          fleet push` publishes the desired state, the device asks for chunks (a sliding window
//          of cloud.download.windowChunks = 16 outstanding: the next request goes out as each
//          chunk arrives), serve answers from its store, the device writes each chunk in place
//          and fsyncs them in group commits (a chunk counts only once durable). MB/s = size / the `fetch-chunks`
//          step's duration as the device logs it; the time to `staged` (size, SHA-256 checked)
//          is shown too.
//   raw:   one mqtt.js client publishing every chunk (the same 64 KiB pieces, QoS 1, the same
//          topics) at once to one subscriber; MB/s = size / (first publish -> last chunk received).
//          Also with at most 16 unacknowledged, Perch's window.
// The broker runs with `set_tcp_nodelay true` (docs/cloud-sync.md): with Mosquitto's default
// (Nagle on), small packets it sends (chunk requests forwarded to serve, PUBACKs) wait for the
// peer's delayed ACK, ~40 ms stalls in a request/response transfer that a one-way raw publish
// never sees. PERCH_BENCH_TCP_NODELAY=0 runs with the default to show that.
// Run: node dist/bench/mqtt-transfer.js (PERCH_BENCH_ROUNDS, default 3).
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { topics } from '../cloud-sync/protocol/index.js';
import { startMosquitto, type Mosquitto } from '../test/helpers/mosquitto.js';
import { MODEL_FILES } from '../test/helpers/paths.js';
import { connectBench, publishWindowed } from './lib/mqtt-clients.js';
import { spawnLogged, startDevice, type Device, type LoggedProcess } from './lib/mqtt-device.js';
import { CLI } from './lib/perch-server.js';
import { saveSection } from './lib/results.js';
import { median, printTable, ratio, spread } from './lib/stats.js';

const ROUNDS = Number(process.env.PERCH_BENCH_ROUNDS ?? 3);
const FILE = MODEL_FILES.ocrRec;
const MODEL = readFileSync(FILE);
const CHUNK = 64 * 1024; // `perch fleet push` default --chunk-size
const CHUNKS = Math.ceil(MODEL.length / CHUNK);
const WINDOW = 16; // cloud.download.windowChunks default
const PREFIX = 'perch/v1';
const MB = 1e6;
const NODELAY = process.env.PERCH_BENCH_TCP_NODELAY !== '0';

interface PerchRun {
  mbPerSec: number;
  fetchMs: number;
  stagedMs: number;
}

async function perchRun(broker: Mosquitto, store: string, version: number): Promise<PerchRun> {
  const deviceId = `bench-dl-${randomUUID().slice(0, 8)}`;
  let device: Device | null = null;
  try {
    device = await startDevice({ brokerUrl: broker.url, deviceId, config: {}, env: { PERCH_ALLOW_UNSIGNED_MODELS: 'true' } });
    await device.waitLine((l) => l.msg === 'connected to the broker', 10_000, 'device connected');
    const pushedAt = performance.now();
    const push = spawnLogged(
      [CLI, 'fleet', 'push', '--url', broker.url, '--store', store, '--device', deviceId, '--model', 'rec', '--version', String(version), '--file', FILE, '--chunk-size', String(CHUNK)],
      {},
      store,
    );
    const code = await push.exited;
    if (code !== 0) throw new Error(`perch fleet push exited with ${code}`);
    const isStep = (name: string) => (l: Record<string, unknown>) => l.msg === 'model update step done' && l.step === name;
    const fetched = await device.waitLine(isStep('fetch-chunks'), 60_000, 'fetch-chunks done');
    await device.waitLine(isStep('stage'), 30_000, 'stage done');
    const stagedMs = performance.now() - pushedAt;
    const fetchMs = fetched.ms as number;
    return { mbPerSec: MODEL.length / MB / (fetchMs / 1000), fetchMs, stagedMs };
  } finally {
    await device?.stop();
  }
}

/** Raw: every chunk published QoS 1 by one client (at most `window` unacknowledged), one subscriber. */
async function rawRun(broker: Mosquitto, window: number): Promise<{ mbPerSec: number; ms: number }> {
  const deviceId = `bench-raw-${randomUUID().slice(0, 8)}`;
  const t = topics(PREFIX, deviceId);
  const sub = await connectBench(broker.url, { clientId: `sub-${deviceId}` });
  const pub = await connectBench(broker.url, { clientId: `pub-${deviceId}` });
  try {
    let bytes = 0;
    let received = 0;
    const got = new Uint8Array(CHUNKS);
    const all = new Promise<number>((resolve) =>
      sub.on('message', (topic, payload) => {
        const i = Number(topic.slice(topic.lastIndexOf('/') + 1));
        if (got[i]) return;
        got[i] = 1;
        bytes += payload.length;
        if (++received === CHUNKS) resolve(performance.now());
      }),
    );
    await sub.subscribeAsync(t.chunk('rec', 1, 0).replace(/\/0$/, '/+'), { qos: 1 });
    const started = performance.now();
    await publishWindowed(pub, (i) => t.chunk('rec', 1, i), CHUNKS, window, (i) => MODEL.subarray(i * CHUNK, (i + 1) * CHUNK));
    const doneAt = await Promise.race([all, new Promise<number>((_, reject) => setTimeout(() => reject(new Error(`raw subscriber has ${received} of ${CHUNKS} chunks`)), 30_000).unref())]);
    if (bytes !== MODEL.length) throw new Error(`raw moved ${bytes} bytes, expected ${MODEL.length}`);
    const ms = doneAt - started;
    return { mbPerSec: MODEL.length / MB / (ms / 1000), ms };
  } finally {
    await pub.endAsync(true);
    await sub.endAsync(true);
  }
}

async function main(): Promise<void> {
  console.log(`# mqtt model transfer benchmark: node ${process.version}, ${cpus().length} cpus (${cpus()[0]?.model ?? '?'})`);
  console.log(`# ${FILE.split('/').pop()}: ${(MODEL.length / MB).toFixed(1)} MB, ${CHUNKS} chunks of ${CHUNK} B, QoS 1, ${ROUNDS} interleaved rounds`);
  console.log(`# broker: local Mosquitto, autosave off, set_tcp_nodelay ${NODELAY}`);
  const broker = await startMosquitto({ autosaveChanges: 1_000_000_000, ...(NODELAY ? { extraConfig: 'set_tcp_nodelay true' } : {}) });
  const store = mkdtempSync(join(tmpdir(), 'perch-bench-fleet-'));
  let serve: LoggedProcess | null = null;
  const rawAll: { mbPerSec: number; ms: number }[] = [];
  const rawWin: { mbPerSec: number; ms: number }[] = [];
  const perch: PerchRun[] = [];
  try {
    serve = spawnLogged([CLI, 'fleet', 'serve', '--url', broker.url, '--store', store, '--progress-ms', '0'], {}, store);
    await serve.waitLine((l) => l.msg === 'fleet serve ready', 15_000, 'fleet serve ready');
    for (let r = 0; r < ROUNDS; r++) {
      rawAll.push(await rawRun(broker, CHUNKS));
      rawWin.push(await rawRun(broker, WINDOW));
      perch.push(await perchRun(broker, store, r + 1));
      console.log(
        `  round ${r + 1}: raw ${rawAll.at(-1)!.mbPerSec.toFixed(1)} MB/s, raw window ${WINDOW} ${rawWin.at(-1)!.mbPerSec.toFixed(1)} MB/s, ` +
          `perch ${perch.at(-1)!.mbPerSec.toFixed(1)} MB/s (fetch ${perch.at(-1)!.fetchMs} ms, push -> staged ${Math.round(perch.at(-1)!.stagedMs)} ms)`,
      );
    }
  } finally {
    await serve?.stop();
    await broker.close();
    rmSync(store, { recursive: true, force: true });
  }

  const mbs = (xs: { mbPerSec: number }[]) => xs.map((x) => x.mbPerSec);
  const ratios = perch.map((p, i) => p.mbPerSec / (rawAll[i] as { mbPerSec: number }).mbPerSec);
  const ratiosWin = perch.map((p, i) => p.mbPerSec / (rawWin[i] as { mbPerSec: number }).mbPerSec);
  const f1 = (x: number) => x.toFixed(1);
  printTable(
    `Model transfer, ${(MODEL.length / MB).toFixed(1)} MB in ${CHUNKS} chunks, median of ${ROUNDS} rounds (ratio = Perch / raw of the same round)`,
    ['side', 'MB/s', 'range', 'ms', 'Perch x this'],
    [
      ['raw mqtt.js, all chunks published at once', f1(median(mbs(rawAll))), spread(mbs(rawAll), 1), String(Math.round(median(rawAll.map((x) => x.ms)))), `${ratio(median(ratios))} (${spread(ratios)})`],
      [`raw mqtt.js, ${WINDOW} unacknowledged at most`, f1(median(mbs(rawWin))), spread(mbs(rawWin), 1), String(Math.round(median(rawWin.map((x) => x.ms)))), `${ratio(median(ratiosWin))} (${spread(ratiosWin)})`],
      ['Perch download (fetch-chunks step)', f1(median(mbs(perch))), spread(mbs(perch), 1), String(median(perch.map((x) => x.fetchMs))), '-'],
    ],
  );
  console.log(`\n  Perch push -> staged (desired published, chunks fetched and fsynced, size + SHA-256 checked): ${Math.round(median(perch.map((x) => x.stagedMs)))} ms (median)`);

  saveSection(
    'mqttTransfer',
    { bytes: MODEL.length, chunkSize: CHUNK, chunks: CHUNKS, window: WINDOW, rounds: ROUNDS, brokerTcpNodelay: NODELAY, rawAllAtOnce: rawAll, rawWindowed: rawWin, perch, ratio: median(ratios), ratioWindowed: median(ratiosWin) },
    'node dist/bench/mqtt-transfer.js',
  );
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
