// Fleet-scale benchmark (issue 16; docs/benchmarks.md "Fleet scale", docs/fleet.md): one real
// Mosquitto, N simulated devices (`perch fleet simulate`, spread over a few processes, each
// device on its own MQTT connection speaking docs/protocol.md section 5), one real `perch fleet
// serve` on the embedded SQLite store.
//   1. Rollout: a tiny valid ONNX model (bench/lib/tiny-onnx.ts, signed) to every device in
//      waves 1%,10%,100% with zero bake: time from `rollout start` to completed, each wave's
//      end, broker and serve CPU time and RSS over it.
//   2. Event ingestion: the same devices restarted with --events-per-second E; events/s stored
//      by one serve worker, then by two (a second serve on the same store: the shared
//      subscription $share/perch-fleet/... splits the batches, fleet.db dedups across them;
//      docs/fleet.md "Several serve processes"), next to a bare mqtt.js client consuming the
//      same messages in the same run (bench/lib/raw-events-consumer.ts), with CPU per 1,000
//      events of each.
//      On SQLite the windows are paired A/B rounds: serve with --ingest-connections 1 (one message
//      in the store at a time, as before group commit) and with the default, interleaved, each
//      next to the raw client in the same window.
// Run: node dist/bench/fleet-scale.js. PERCH_BENCH_FLEET_DEVICES (10000), _PROCS (devices/2500),
// _EPS (events per second per device, 1), _WINDOW_S (20), _ROUNDS (A/B rounds on SQLite, 2),
// _CONNECT_RATE (1000 per process), PERCH_BENCH_FLEET_PHASES=rollout or =ingest (one phase).
// Needs `ulimit -n` above the device count (the broker holds one socket per device).
import Database from 'better-sqlite3';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import ort from 'onnxruntime-node';
import { DEFAULT_INGEST_CONNECTIONS } from '../cloud-sync/fleet/serve/daemon.js';
import { startMosquitto } from '../test/helpers/mosquitto.js';
import { startPostgres, type Postgres } from '../test/helpers/postgres.js';
import { REPO_ROOT } from '../test/helpers/paths.js';
import { fleet, load, load1m, online, openFilesLimit, pgServerCpuMs, pidOf, procCpu, procMiB, served, serveProcess, simProcesses, until, type SimSpread } from './lib/fleet-procs.js';
import { LineProcess } from './lib/line-process.js';
import { saveSection } from './lib/results.js';
import { perSecond, printTable, ratio, sleep } from './lib/stats.js';
import { tinyOnnxModel } from './lib/tiny-onnx.js';
import { disableOrtTelemetry } from '../runtime/sessions/ort-telemetry.js';

// Raw sessions run as Perch's do: without ORT's telemetry (runtime/sessions/ort-telemetry.ts).
disableOrtTelemetry();

const DEVICES = Number(process.env.PERCH_BENCH_FLEET_DEVICES ?? 10_000);
const PROCS = Number(process.env.PERCH_BENCH_FLEET_PROCS ?? Math.max(1, Math.ceil(DEVICES / 2500)));
const EPS = Number(process.env.PERCH_BENCH_FLEET_EPS ?? 1);
const WINDOW_S = Number(process.env.PERCH_BENCH_FLEET_WINDOW_S ?? 20);
const ROUNDS = Number(process.env.PERCH_BENCH_FLEET_ROUNDS ?? 2);
const CONNECT_RATE = Number(process.env.PERCH_BENCH_FLEET_CONNECT_RATE ?? 1000);
const PHASES = process.env.PERCH_BENCH_FLEET_PHASES ?? 'all';
const PREFIX = 'perch/v1';
const ONLINE_TIMEOUT_MS = 10 * 60_000;
const ROLLOUT_TIMEOUT_MS = 20 * 60_000;
const CATCH_UP_MS = 3 * 60_000;
const SPREAD: SimSpread = { devices: DEVICES, procs: PROCS, connectRate: CONNECT_RATE };

interface Bench {
  dir: string;
  store: string;
  keys: string;
  modelFile: string;
  brokerUrl: string;
  brokerPid: number;
  procs: LineProcess[];
}

/** Phase 1: the rollout, driven by `serve`, until it completed or aborted. */
async function rolloutPhase(b: Bench, serve: LineProcess, sims: LineProcess[], db: Database.Database): Promise<Record<string, unknown>> {
  const cpu0 = { broker: procCpu(b.brokerPid), serve: serve.cpuMs(), sims: sims.reduce((s, p) => s + p.cpuMs(), 0) };
  const loadBefore = load();
  const t0 = Date.now();
  const id = await fleet(['rollout', 'start', '--store', b.store, '--model', 'tiny', '--version', '1', '--file', b.modelFile,
    '--sign-key', join(b.keys, 'signing-key.pem'), '--all', '--waves', '1%,10%,100%', '--bake', '0', '--max-failures', '5']);
  let end: Record<string, unknown>;
  try {
    end = await until('rollout settled', ROLLOUT_TIMEOUT_MS, () => {
      if (!serve.running) throw new Error(`fleet-scale: serve exited: ${serve.stderr}`);
      return serve.lines.find((l) => l.msg === 'rollout state' && l.rollout === id && (l.state === 'completed' || l.state === 'aborted'));
    }, 200);
  } catch (err) {
    if (!serve.running) throw err;
    // Bounded: say how far it got and go on to the next phase.
    end = { state: 'not settled', time: Date.now(), reason: `neither completed nor aborted within ${ROLLOUT_TIMEOUT_MS / 60_000} min` };
  }
  const rolloutS = (Number(end.time) - t0) / 1000;
  // Log times are when serve saved a tick's result (after that tick's publishes).
  const waves = serve.lines.filter((l) => l.msg === 'rollout wave' && l.rollout === id && l.state === 'passed')
    .map((l) => ({ wave: Number(l.wave), size: Number(l.size), passedS: (Number(l.time) - t0) / 1000 }));
  const rollout = {
    devices: DEVICES, state: end.state, reason: end.reason ?? null, seconds: rolloutS, waves,
    active: db.prepare(`SELECT COUNT(*) FROM rollout_devices WHERE rollout_id = ? AND json_extract(doc, '$.status') = 'active'`).pluck().get(id) as number,
    brokerCpuS: (procCpu(b.brokerPid) - cpu0.broker) / 1000, serveCpuS: (serve.cpuMs() - cpu0.serve) / 1000,
    simsCpuS: (sims.reduce((s, p) => s + p.cpuMs(), 0) - cpu0.sims) / 1000,
    brokerRssMiB: procMiB(b.brokerPid, 'VmRSS'), brokerHwmMiB: procMiB(b.brokerPid, 'VmHWM'),
    serveRssMiB: serve.rssMiB(), serveHwmMiB: serve.hwmMiB(),
    simsRssMiB: sims.reduce((s, p) => s + p.rssMiB(), 0), simReconnects: sims.reduce((n, p) => n + Number(p.last('progress')?.disconnects ?? 0), 0),
    loadBefore, loadAfter: load(),
  };
  console.log(`ROLLOUT ${String(end.state).toUpperCase()}: ${rollout.active} of ${DEVICES} devices active in ${rolloutS.toFixed(1)} s${end.state === 'completed' ? '' : ` (${String(end.reason)})`}`);
  printTable(`Rollout of a ${tinyOnnxModel().length}-byte model to ${DEVICES} devices, waves 1%,10%,100%, bake 0 (load ${loadBefore} -> ${rollout.loadAfter})`,
    ['what', 'value'], [
      ['state', String(rollout.state)], ['start -> 100% active (s)', rolloutS.toFixed(1)], ['devices active', String(rollout.active)],
      ...waves.map((w) => [`wave ${w.wave + 1} (${w.size} devices) passed at (s)`, w.passedS.toFixed(1)]),
      ['broker CPU (s)', rollout.brokerCpuS.toFixed(1)], ['serve CPU (s)', rollout.serveCpuS.toFixed(1)], ['simulators CPU (s)', rollout.simsCpuS.toFixed(1)],
      ['broker RSS / peak (MiB)', `${rollout.brokerRssMiB.toFixed(0)} / ${rollout.brokerHwmMiB.toFixed(0)}`],
      ['serve RSS / peak (MiB)', `${rollout.serveRssMiB.toFixed(0)} / ${rollout.serveHwmMiB.toFixed(0)}`],
      ['simulators RSS (MiB, all)', rollout.simsRssMiB.toFixed(0)],
      ['simulator disconnects (all, since start)', String(rollout.simReconnects)],
      // The counters, not the lines: serve logs a chunk request's refusal at most once a second per reason and device.
      ['messages serve ignored (all reasons)', String(Object.values((serve.last('progress')?.ignored ?? {}) as Record<string, number>).reduce((a, b) => a + b, 0))],
    ]);
  return rollout;
}

/**
 * One measuring window, like with like (docs/benchmarks.md "Fleet scale", what is counted):
 * distinct (device, seq) events per second the raw client received against those the workers
 * stored new, both over the same window; and every event received or handled, re-sends
 * included, with CPU per 1,000 of those. With N workers sharing one offered load each worker's
 * share is 1/N of it, so a worker's ratio is its stored rate over raw's distinct rate / N.
 */
async function measure(b: Bench, raw: LineProcess, workers: LineProcess[], pgPort?: number): Promise<Record<string, number>> {
  const s0 = workers.map(served);
  const r0 = raw.last('count');
  const c0 = { workers: workers.map((w) => w.cpuMs()), raw: raw.cpuMs(), broker: procCpu(b.brokerPid), pg: pgPort ? pgServerCpuMs(pgPort) : NaN };
  await sleep(WINDOW_S * 1000);
  const pgCpu = pgPort ? pgServerCpuMs(pgPort) - c0.pg : NaN;
  const s1 = workers.map(served);
  const r1 = raw.last('count');
  const rawMs = Number(r1?.t) - Number(r0?.t);
  const rawRate = (k: string): number => ((Number(r1?.[k]) - Number(r0?.[k])) * 1000) / rawMs;
  const received = Number(r1?.events) - Number(r0?.events);
  const rawUnique = rawRate('unique');
  const out: Record<string, number> = {
    rawMessagesPerSec: rawRate('messages'), rawEventsPerSec: rawRate('events'), rawUniquePerSec: rawUnique,
    rawCpuMsPer1kEvents: ((raw.cpuMs() - c0.raw) / received) * 1000, brokerCpuS: (procCpu(b.brokerPid) - c0.broker) / 1000,
  };
  let stored = 0;
  let handled = 0;
  workers.forEach((w, i) => {
    const a = s0[i] ?? { stored: 0, handled: 0, t: 0 };
    const z = s1[i] ?? { stored: 0, handled: 0, t: 1 };
    const ms = z.t - a.t;
    const storedRate = ((z.stored - a.stored) * 1000) / ms;
    const handledRate = ((z.handled - a.handled) * 1000) / ms;
    stored += storedRate;
    handled += handledRate;
    const k = `worker${i + 1}`;
    out[`${k}StoredPerSec`] = storedRate;
    out[`${k}HandledPerSec`] = handledRate;
    out[`${k}Ratio`] = storedRate / (rawUnique / workers.length);
    out[`${k}CpuMsPer1kEvents`] = ((w.cpuMs() - (c0.workers[i] ?? 0)) / Math.max(1, z.handled - a.handled)) * 1000;
    out[`${k}RssMiB`] = w.rssMiB();
    const last = w.last('progress');
    out[`${k}WritesPerCommit`] = Number(last?.groupedWrites ?? 0) / Math.max(1, Number(last?.commits ?? 0));
  });
  out.workersStoredPerSec = stored;
  out.workersHandledPerSec = handled;
  // The database server's CPU per 1,000 events the workers handled (PostgreSQL only): its part of the cost.
  out.pgServerCpuMsPer1kEvents = (pgCpu / (handled * WINDOW_S)) * 1000;
  out.ratio = stored / rawUnique;
  out.load1m = load1m();
  return out;
}

/** A serve worker started and caught up: every device's retained status and reported state taken in, events flowing. */
async function startWorker(b: Bench, name: string, db?: string, extra: string[] = []): Promise<{ w: LineProcess; catchUpS: number }> {
  const w = serveProcess(name, b.brokerUrl, b.store, db, extra);
  b.procs.push(w);
  const t0 = Date.now();
  // Bounded: a worker still taking in retained statuses after CATCH_UP_MS is measured as it is
  // (one connection under a flood of events can take minutes at 10,000 devices), and says so.
  let caughtUp = false;
  await until(`${name} ingesting`, ONLINE_TIMEOUT_MS, () => {
    if (!w.running) throw new Error(`fleet-scale: ${name} exited: ${w.stderr}`);
    const p = w.last('progress');
    caughtUp = Number(p?.statusUpdates ?? 0) + Number(p?.reportedUpdates ?? 0) >= 2 * DEVICES;
    return Number(p?.batches ?? 0) > 0 && (caughtUp || Date.now() - t0 > CATCH_UP_MS);
  });
  const catchUpS = (Date.now() - t0) / 1000;
  console.log(`${name}: ${caughtUp ? 'caught up' : 'NOT caught up with the retained statuses'} ${catchUpS.toFixed(1)} s after start; load ${load()}`);
  await sleep(3000);
  return { w, catchUpS };
}

/** Phase 2: event ingestion, SQLite A/B rounds, then PostgreSQL with two and one workers. */
async function ingestPhase(b: Bench, sims: LineProcess[]): Promise<Record<string, unknown>> {
  const raw = new LineProcess('raw', process.execPath, [join(REPO_ROOT, 'dist', 'bench', 'lib', 'raw-events-consumer.js'), b.brokerUrl, PREFIX], ['"raw consumer ready"', '"count"']);
  b.procs.push(raw);
  await until('raw consumer ready', 30_000, () => raw.last('raw consumer ready'));
  await Promise.all(sims.map((s) => s.stop()));
  const senders = simProcesses(SPREAD, b.brokerUrl, join(b.keys, 'signing-key.pub.pem'), EPS);
  b.procs.push(...senders);
  await until('devices online again', ONLINE_TIMEOUT_MS, () => online(senders) >= DEVICES, 500, () => `${online(senders)} of ${DEVICES} online`);
  await sleep(5000);

  // SQLite, paired A/B rounds: --ingest-connections 1 vs the default, the order alternating.
  const sqlite: Array<Record<string, number>> = [];
  for (let round = 0; round < ROUNDS; round++) {
    const order = round % 2 === 0 ? [1, DEFAULT_INGEST_CONNECTIONS] : [DEFAULT_INGEST_CONNECTIONS, 1];
    for (const conns of order) {
      const { w, catchUpS } = await startWorker(b, `serve-sqlite-${conns}c-r${round}`, undefined, ['--ingest-connections', String(conns)]);
      const m = await measure(b, raw, [w]);
      sqlite.push({ ...m, round, ingestConnections: conns, catchUpS });
      await w.stop();
    }
  }
  // Several workers: PostgreSQL (docs/fleet.md "Several serve processes"), fsync on.
  const pg: Postgres = await startPostgres({ fsync: true });
  try {
    const dbUrl = await pg.createDatabase();
    const workers: LineProcess[] = [];
    const catchUpS: number[] = [];
    for (const n of [1, 2]) {
      const { w, catchUpS: s } = await startWorker(b, `serve-pg-${n}`, dbUrl);
      workers.push(w);
      catchUpS.push(s);
    }
    const pgTwo = await measure(b, raw, workers, pg.port);
    await workers[1]?.stop();
    await sleep(5000);
    const pgOne = await measure(b, raw, workers.slice(0, 1), pg.port);
    for (const w of workers) await w.stop();
    printIngestion(sqlite, pgOne, pgTwo);
    return { offeredEventsPerSec: DEVICES * EPS, sqliteRounds: sqlite, postgresWorkerCatchUpS: catchUpS, postgresOneWorker: pgOne, postgresTwoWorkers: pgTwo };
  } finally {
    await pg.close();
  }
}

function printIngestion(sqlite: Array<Record<string, number>>, pgOne: Record<string, number>, pgTwo: Record<string, number>): void {
  const n = (x: number | undefined, f: (v: number) => string = perSecond): string => f(x ?? NaN);
  const row = (name: string, r: Record<string, number>, workers: number): string[][] => [
    [`raw mqtt.js client (${name})`, n(r.rawUniquePerSec), n(r.rawEventsPerSec), n(r.rawCpuMsPer1kEvents, ratio), '-', '-', n(r.load1m, (v) => v.toFixed(1))],
    ...Array.from({ length: workers }, (_, i) => {
      const k = `worker${i + 1}`;
      return [`fleet serve worker ${i + 1} of ${workers} (${name})`, n(r[`${k}StoredPerSec`]), n(r[`${k}HandledPerSec`]),
        n(r[`${k}CpuMsPer1kEvents`], ratio), n(r[`${k}Ratio`], ratio), n(r[`${k}WritesPerCommit`], ratio), n(r.load1m, (v) => v.toFixed(1))];
    }),
  ];
  printTable(`Event ingestion, ${DEVICES} devices x ${EPS} event/s (offered ${perSecond(DEVICES * EPS)} distinct events/s in batches of 10), ${WINDOW_S} s windows. ` +
    'distinct: (device, seq) events new to the consumer (raw) or to the store (serve); all: every event received or handled, re-sends included. ' +
    'x raw per worker: its distinct rate / (raw distinct rate / workers)',
    ['consumer', 'distinct events/s', 'all events/s', 'CPU ms per 1k (all)', 'x raw per worker', 'writes per commit', 'load 1m'],
    [
      ...sqlite.flatMap((r) => row(`SQLite, --ingest-connections ${r.ingestConnections}, round ${Number(r.round) + 1}`, r, 1)),
      ...row('PostgreSQL, 2 workers', pgTwo, 2), ...row('PostgreSQL, 1 worker', pgOne, 1),
    ]);
  for (const [name, r, workers] of [['PostgreSQL, 1 worker', pgOne, 1], ['PostgreSQL, 2 workers', pgTwo, 2]] as const) {
    const each = Array.from({ length: workers }, (_, i) => n(r[`worker${i + 1}Ratio`], ratio)).join(' + ');
    console.log(`${name}: ${each} x raw per worker (together stored ${n(r.workersStoredPerSec)} distinct events/s of raw's ${n(r.rawUniquePerSec)}; ` +
      `raw received ${n(r.rawEventsPerSec)} events/s in ${n(r.rawMessagesPerSec)} messages/s, re-sends included; PostgreSQL server CPU ${n(r.pgServerCpuMsPer1kEvents, ratio)} ms per 1,000 events handled)`);
  }
}

async function main(): Promise<void> {
  const limit = openFilesLimit();
  if (limit < DEVICES + 500) throw new Error(`fleet-scale: ulimit -n is ${limit}; the broker needs one socket per device: raise it above ${DEVICES + 500}`);
  console.log(`# fleet-scale: ${DEVICES} simulated devices in ${PROCS} processes, one Mosquitto, fleet serve; phases ${PHASES}; load average ${load()}`);
  const dir = mkdtempSync(join(tmpdir(), 'perch-fleet-scale-'));
  const modelFile = join(dir, 'tiny.onnx');
  writeFileSync(modelFile, tinyOnnxModel());
  // A valid model: onnxruntime-node loads it and answers.
  const session = await ort.InferenceSession.create(modelFile);
  const y = await session.run({ x: new ort.Tensor('float32', Float32Array.from([0.5]), [1]) });
  if ((y.y?.data as Float32Array)[0] !== 0.5) throw new Error('fleet-scale: the tiny model does not answer');
  await session.release();
  const keys = join(dir, 'keys');
  await fleet(['keygen', '--out', keys]);

  const broker = await startMosquitto({
    autosaveChanges: 1_000_000,
    extraConfig: ['max_connections -1', 'set_tcp_nodelay true', 'max_queued_messages 100000', 'connection_messages false'].join('\n'),
    startTimeoutMs: 20_000,
  });
  const b: Bench = { dir, store: join(dir, 'fleet'), keys, modelFile, brokerUrl: broker.url, brokerPid: pidOf(broker.configFile), procs: [] };
  try {
    const serve1 = serveProcess('serve-sqlite', broker.url, b.store);
    b.procs.push(serve1);
    await until('serve ready', 30_000, () => serve1.last('fleet serve ready'));

    // Devices online, and recorded by serve (what `rollout start --all` targets).
    const tConnect = Date.now();
    const sims = simProcesses(SPREAD, broker.url, join(keys, 'signing-key.pub.pem'), 0);
    b.procs.push(...sims);
    await until('devices online', ONLINE_TIMEOUT_MS, () => online(sims) >= DEVICES, 500, () => `${online(sims)} of ${DEVICES} online`);
    const db = new Database(join(b.store, 'fleet.db'), { readonly: true, fileMustExist: true });
    // Online, and serve has stored each one's reported state: the rollout starts from a serve
    // that has caught up with the connect burst (20,000 messages at 10,000 devices).
    const known = db.prepare('SELECT COUNT(*) FROM devices WHERE online = 1 AND reported IS NOT NULL').pluck();
    await until('serve knows every device', ONLINE_TIMEOUT_MS, () => (known.get() as number) >= DEVICES, 500, () => `serve recorded ${String(known.get())} of ${DEVICES}`);
    const connectS = (Date.now() - tConnect) / 1000;
    console.log(`${DEVICES} devices online and recorded in ${connectS.toFixed(1)} s; load ${load()}`);

    const result: Record<string, unknown> = { devices: DEVICES, simulatorProcesses: PROCS, eventsPerSecondPerDevice: EPS, windowS: WINDOW_S, connectS };
    if (PHASES !== 'ingest') result.rollout = await rolloutPhase(b, serve1, sims, db);
    db.close();
    await serve1.stop();
    if (PHASES !== 'rollout') result.ingestion = await ingestPhase(b, sims);
    result.loadAtEnd = load();
    const r = result.rollout as { state?: unknown; active?: number; seconds?: number } | undefined;
    console.log(`fleet-scale done: ${DEVICES} devices online in ${connectS.toFixed(1)} s` +
      (r ? `; rollout ${String(r.state)} (${r.active ?? 0} of ${DEVICES} active, ${r.seconds?.toFixed(1)} s)` : '') +
      (result.ingestion ? '; ingestion measured' : '') + `; load ${load()}`);
    const section = PHASES === 'rollout' ? 'fleetScaleRollout' : PHASES === 'ingest' ? 'fleetScaleIngest' : 'fleetScale';
    saveSection(section, result, `${PHASES === 'all' ? '' : `PERCH_BENCH_FLEET_PHASES=${PHASES} `}node dist/bench/fleet-scale.js`);
  } finally {
    for (const p of b.procs.reverse()) await p.stop('SIGTERM', 15_000).catch(() => undefined);
    await broker.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
