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
// Run: node dist/bench/fleet-scale.js. PERCH_BENCH_FLEET_DEVICES (10000), _PROCS (devices/2500),
// _EPS (events per second per device, 1), _WINDOW_S (20), _CONNECT_RATE (1000 per process),
// PERCH_BENCH_FLEET_PHASES=rollout (the rollout alone).
// Needs `ulimit -n` above the device count (the broker holds one socket per device).
import Database from 'better-sqlite3';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import ort from 'onnxruntime-node';
import { run } from '../cloud-sync/fleet/cli/main.js';
import { startMosquitto } from '../test/helpers/mosquitto.js';
import { CLI, cleanEnv } from '../test/helpers/perch-process.js';
import { startPostgres, type Postgres } from '../test/helpers/postgres.js';
import { REPO_ROOT } from '../test/helpers/paths.js';
import { LineProcess } from './lib/line-process.js';
import { saveSection } from './lib/results.js';
import { perSecond, printTable, ratio } from './lib/stats.js';
import { tinyOnnxModel } from './lib/tiny-onnx.js';

const DEVICES = Number(process.env.PERCH_BENCH_FLEET_DEVICES ?? 10_000);
const PROCS = Number(process.env.PERCH_BENCH_FLEET_PROCS ?? Math.max(1, Math.ceil(DEVICES / 2500)));
const EPS = Number(process.env.PERCH_BENCH_FLEET_EPS ?? 1);
const WINDOW_S = Number(process.env.PERCH_BENCH_FLEET_WINDOW_S ?? 20);
const CONNECT_RATE = Number(process.env.PERCH_BENCH_FLEET_CONNECT_RATE ?? 1000);
/** `rollout` skips the ingestion phase (to compare rollout controllers quickly). */
const ONLY_ROLLOUT = process.env.PERCH_BENCH_FLEET_PHASES === 'rollout';
const PREFIX = 'perch/v1';
const ONLINE_TIMEOUT_MS = 10 * 60_000;
const ROLLOUT_TIMEOUT_MS = 30 * 60_000;

const load = (): string => loadavg().map((x) => x.toFixed(2)).join(' ');
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function until<T>(what: string, timeoutMs: number, cond: () => T | undefined | null | false, everyMs = 500): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = cond();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`fleet-scale: timed out waiting for ${what}`);
    await sleep(everyMs);
  }
}

function openFilesLimit(): number {
  const m = /^Max open files\s+(\d+|unlimited)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
  return m?.[1] === 'unlimited' ? Infinity : Number(m?.[1] ?? 1024);
}

/** The broker's pid (test/helpers/mosquitto.ts does not hand it out): the process started with its config file. */
function pidOf(configFile: string): number {
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      if (readFileSync(`/proc/${d}/cmdline`, 'utf8').includes(configFile)) return Number(d);
    } catch {
      // gone meanwhile
    }
  }
  throw new Error('fleet-scale: broker pid not found');
}

function procCpu(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
  return (Number(f[11]) + Number(f[12])) * 10;
}

function procMiB(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m?.[1] ?? 0) / 1024;
}

async function fleet(args: string[]): Promise<string> {
  let out = '';
  let err = '';
  const w = (f: (s: string) => void) => ({ write: (s: string) => (f(s), true) }) as unknown as NodeJS.WritableStream;
  const code = await run(args, w((s) => (out += s)), w((s) => (err += s)));
  if (code !== 0) throw new Error(`perch fleet ${args[0]}: exit ${code}: ${err}`);
  return out.trim();
}

/** A serve worker: random client id and clean session, so a stopped one leaves the share group at once. */
function serveProcess(name: string, url: string, store: string, db?: string): LineProcess {
  return new LineProcess(name, process.execPath, [CLI, 'fleet', 'serve', '--url', url, '--store', store, '--progress-ms', '1000', ...(db ? ['--db', db] : [])],
    ['"progress"', '"rollout state"', '"rollout wave"', 'fleet serve ready', 'chunk request ignored'], cleanEnv());
}

function simProcesses(url: string, pub: string, eps: number): LineProcess[] {
  const per = Math.ceil(DEVICES / PROCS);
  return Array.from({ length: PROCS }, (_, k) => {
    const n = Math.min(per, DEVICES - k * per);
    return new LineProcess(`sim-${k}`, process.execPath, [
      CLI, 'fleet', 'simulate', '--devices', String(n), '--broker', url, '--id-prefix', `s${k}-`, '--labels', 'site=bench',
      '--trusted-keys', pub, '--events-per-second', String(eps), '--report-ms', '0', '--progress-ms', '1000', '--connect-rate', String(CONNECT_RATE),
    ], ['"progress"', 'simulate ready', 'simulate stopped'], cleanEnv());
  }).filter((_, k) => k * per < DEVICES);
}

const online = (sims: readonly LineProcess[]): number => sims.reduce((s, p) => s + Number(p.last('progress')?.online ?? 0), 0);

/** Events (stored + duplicates) a serve had handled at its last progress line, and when. */
function served(p: LineProcess): { events: number; t: number } {
  const l = p.last('progress');
  return { events: Number(l?.eventsStored ?? 0) + Number(l?.duplicates ?? 0), t: Number(l?.time ?? Date.now()) };
}

async function main(): Promise<void> {
  const limit = openFilesLimit();
  if (limit < DEVICES + 500) throw new Error(`fleet-scale: ulimit -n is ${limit}; the broker needs one socket per device: raise it above ${DEVICES + 500}`);
  console.log(`# fleet-scale: ${DEVICES} simulated devices in ${PROCS} processes, one Mosquitto, one/two fleet serve; load average ${load()}`);
  const dir = mkdtempSync(join(tmpdir(), 'perch-fleet-scale-'));
  const store = join(dir, 'fleet');
  const keys = join(dir, 'keys');
  const modelFile = join(dir, 'tiny.onnx');
  writeFileSync(modelFile, tinyOnnxModel());
  // A valid model: onnxruntime-node loads it and answers.
  const session = await ort.InferenceSession.create(modelFile);
  const y = await session.run({ x: new ort.Tensor('float32', Float32Array.from([0.5]), [1]) });
  if ((y.y?.data as Float32Array)[0] !== 0.5) throw new Error('fleet-scale: the tiny model does not answer');
  await session.release();
  await fleet(['keygen', '--out', keys]);

  const broker = await startMosquitto({
    autosaveChanges: 1_000_000,
    extraConfig: ['max_connections -1', 'set_tcp_nodelay true', 'max_queued_messages 100000', 'connection_messages false'].join('\n'),
    startTimeoutMs: 20_000,
  });
  const brokerPid = pidOf(broker.configFile);
  const procs: LineProcess[] = [];
  let pg: Postgres | undefined;
  try {
    const serve1 = serveProcess('serve-sqlite', broker.url, store);
    procs.push(serve1);
    await until('serve ready', 30_000, () => serve1.last('fleet serve ready'));

    // Devices online, and recorded by serve (what `rollout start --all` targets).
    const tConnect = Date.now();
    let sims = simProcesses(broker.url, join(keys, 'signing-key.pub.pem'), 0);
    procs.push(...sims);
    await until('devices online', ONLINE_TIMEOUT_MS, () => online(sims) >= DEVICES);
    const db = new Database(join(store, 'fleet.db'), { readonly: true, fileMustExist: true });
    // Online, and serve has stored each one's reported state: the rollout starts from a serve
    // that has caught up with the connect burst (20,000 messages at 10,000 devices).
    const known = db.prepare('SELECT COUNT(*) FROM devices WHERE online = 1 AND reported IS NOT NULL').pluck();
    await until('serve knows every device', ONLINE_TIMEOUT_MS, () => (known.get() as number) >= DEVICES);
    const connectS = (Date.now() - tConnect) / 1000;
    console.log(`${DEVICES} devices online and recorded in ${connectS.toFixed(1)} s; load ${load()}`);

    // 1. The rollout.
    const cpu0 = { broker: procCpu(brokerPid), serve: serve1.cpuMs(), sims: sims.reduce((s, p) => s + p.cpuMs(), 0) };
    const loadBefore = load();
    const t0 = Date.now();
    const id = await fleet(['rollout', 'start', '--store', store, '--model', 'tiny', '--version', '1', '--file', modelFile,
      '--sign-key', join(keys, 'signing-key.pem'), '--all', '--waves', '1%,10%,100%', '--bake', '0', '--max-failures', '5']);
    const end = await until('rollout settled', ROLLOUT_TIMEOUT_MS, () =>
      serve1.lines.find((l) => l.msg === 'rollout state' && l.rollout === id && (l.state === 'completed' || l.state === 'aborted')), 200);
    const rolloutS = (Number(end.time) - t0) / 1000;
    // Log times are when serve saved a tick's result (after that tick's publishes).
    const waves = serve1.lines.filter((l) => l.msg === 'rollout wave' && l.rollout === id && l.state === 'passed')
      .map((l) => ({ wave: Number(l.wave), size: Number(l.size), passedS: (Number(l.time) - t0) / 1000 }));
    const rollout = {
      devices: DEVICES, state: end.state, seconds: rolloutS, waves,
      active: db.prepare(`SELECT COUNT(*) FROM rollout_devices WHERE rollout_id = ? AND json_extract(doc, '$.status') = 'active'`).pluck().get(id) as number,
      brokerCpuS: (procCpu(brokerPid) - cpu0.broker) / 1000, serveCpuS: (serve1.cpuMs() - cpu0.serve) / 1000,
      simsCpuS: (sims.reduce((s, p) => s + p.cpuMs(), 0) - cpu0.sims) / 1000,
      brokerRssMiB: procMiB(brokerPid, 'VmRSS'), brokerHwmMiB: procMiB(brokerPid, 'VmHWM'),
      serveRssMiB: serve1.rssMiB(), serveHwmMiB: serve1.hwmMiB(),
      simsRssMiB: sims.reduce((s, p) => s + p.rssMiB(), 0), loadBefore, loadAfter: load(),
    };
    if (end.state !== 'completed') console.log(`rollout ${String(end.state)}: ${String(end.reason)}`);
    printTable(`Rollout of a ${tinyOnnxModel().length}-byte model to ${DEVICES} devices, waves 1%,10%,100%, bake 0 (load ${loadBefore} -> ${rollout.loadAfter})`,
      ['what', 'value'], [
        ['state', String(rollout.state)], ['start -> 100% active (s)', rolloutS.toFixed(1)], ['devices active', String(rollout.active)],
        ...waves.map((w) => [`wave ${w.wave + 1} (${w.size} devices) passed at (s)`, w.passedS.toFixed(1)]),
        ['broker CPU (s)', rollout.brokerCpuS.toFixed(1)], ['serve CPU (s)', rollout.serveCpuS.toFixed(1)], ['simulators CPU (s)', rollout.simsCpuS.toFixed(1)],
        ['broker RSS / peak (MiB)', `${rollout.brokerRssMiB.toFixed(0)} / ${rollout.brokerHwmMiB.toFixed(0)}`],
        ['serve RSS / peak (MiB)', `${rollout.serveRssMiB.toFixed(0)} / ${rollout.serveHwmMiB.toFixed(0)}`],
        ['simulators RSS (MiB, all)', rollout.simsRssMiB.toFixed(0)],
        ['chunk requests serve ignored', String(serve1.lines.filter((l) => l.msg === 'chunk request ignored').length)],
      ]);
    db.close();
    if (ONLY_ROLLOUT) {
      saveSection('fleetScaleRollout', { devices: DEVICES, simulatorProcesses: PROCS, connectS, rollout }, 'PERCH_BENCH_FLEET_PHASES=rollout node dist/bench/fleet-scale.js');
      return;
    }

    // 2. Event ingestion: the devices restart sending E events per second each.
    const raw = new LineProcess('raw', process.execPath, [join(REPO_ROOT, 'dist', 'bench', 'lib', 'raw-events-consumer.js'), broker.url, PREFIX], ['"raw consumer ready"', '"count"']);
    procs.push(raw);
    await until('raw consumer ready', 30_000, () => raw.last('raw consumer ready'));
    await Promise.all(sims.map((s) => s.stop()));
    sims = simProcesses(broker.url, join(keys, 'signing-key.pub.pem'), EPS);
    procs.push(...sims);
    await until('devices online again', ONLINE_TIMEOUT_MS, () => online(sims) >= DEVICES);
    await sleep(5000);

    const window = async (workers: LineProcess[]): Promise<Record<string, number>> => {
      const s0 = workers.map(served);
      const r0 = raw.last('count');
      const c0 = { workers: workers.map((w) => w.cpuMs()), raw: raw.cpuMs(), broker: procCpu(brokerPid) };
      await sleep(WINDOW_S * 1000);
      const s1 = workers.map(served);
      const r1 = raw.last('count');
      const rawRate = ((Number(r1?.events) - Number(r0?.events)) * 1000) / (Number(r1?.t) - Number(r0?.t));
      const rates = workers.map((_, i) => (((s1[i]?.events ?? 0) - (s0[i]?.events ?? 0)) * 1000) / ((s1[i]?.t ?? 1) - (s0[i]?.t ?? 0)));
      const events = (Number(r1?.events) - Number(r0?.events));
      const rawCpuPer1k = ((raw.cpuMs() - c0.raw) / events) * 1000;
      const out: Record<string, number> = { rawEventsPerSec: rawRate, rawCpuMsPer1kEvents: rawCpuPer1k, brokerCpuS: (procCpu(brokerPid) - c0.broker) / 1000 };
      let total = 0;
      workers.forEach((w, i) => {
        const handled = (s1[i]?.events ?? 0) - (s0[i]?.events ?? 0);
        total += rates[i] ?? 0;
        out[`worker${i + 1}EventsPerSec`] = rates[i] ?? 0;
        out[`worker${i + 1}CpuMsPer1kEvents`] = ((w.cpuMs() - (c0.workers[i] ?? 0)) / Math.max(1, handled)) * 1000;
        out[`worker${i + 1}RssMiB`] = w.rssMiB();
      });
      out.workersEventsPerSec = total;
      out.ratio = total / rawRate;
      return out;
    };
    const sqliteOne = await window([serve1]);
    sqliteOne.load1m = loadavg()[0] ?? 0;
    // Several workers: PostgreSQL (docs/fleet.md "Several serve processes"), fsync on.
    await serve1.stop();
    pg = await startPostgres({ fsync: true });
    const dbUrl = await pg.createDatabase();
    const workers: LineProcess[] = [];
    const catchUpS: number[] = [];
    for (const n of [1, 2]) {
      const w = serveProcess(`serve-pg-${n}`, broker.url, store, dbUrl);
      procs.push(w);
      workers.push(w);
      // A new worker first takes in every device's retained status and reported state, one
      // message at a time (serve handles messages in order): a store round trip each.
      const tw = Date.now();
      await until(`postgres serve ${n} ingesting`, ONLINE_TIMEOUT_MS, () => {
        if (!w.running) throw new Error(`fleet-scale: ${w.name} exited: ${w.stderr}`);
        return Number(w.last('progress')?.batches ?? 0) > 0;
      });
      catchUpS.push((Date.now() - tw) / 1000);
      console.log(`PostgreSQL serve ${n}: first events stored ${catchUpS[n - 1]?.toFixed(1)} s after start; load ${load()}`);
    }
    await sleep(5000);
    const pgTwo = await window(workers);
    pgTwo.load1m = loadavg()[0] ?? 0;
    await workers[1]?.stop();
    await sleep(5000);
    const pgOne = await window(workers.slice(0, 1));
    pgOne.load1m = loadavg()[0] ?? 0;
    const offered = DEVICES * EPS;
    const row = (name: string, r: Record<string, number>, workers: number): string[][] => [
      [`raw mqtt.js client (${name})`, perSecond(r.rawEventsPerSec ?? NaN), ratio(r.rawCpuMsPer1kEvents ?? NaN), '-', '-'],
      ...Array.from({ length: workers }, (_, i) => [`fleet serve worker ${i + 1} of ${workers}`, perSecond(r[`worker${i + 1}EventsPerSec`] ?? NaN),
        ratio(r[`worker${i + 1}CpuMsPer1kEvents`] ?? NaN), ratio((r[`worker${i + 1}EventsPerSec`] ?? NaN) / (r.rawEventsPerSec ?? NaN)),
        ratio((r.rawCpuMsPer1kEvents ?? NaN) / (r[`worker${i + 1}CpuMsPer1kEvents`] ?? NaN))]),
      [`${workers} worker(s) together`, perSecond(r.workersEventsPerSec ?? NaN), '-', ratio(r.ratio ?? NaN), '-'],
    ];
    printTable(`Event ingestion, ${DEVICES} devices x ${EPS} event/s (offered ${perSecond(offered)} events/s in batches of 10), ${WINDOW_S} s windows ` +
      `(load ${[sqliteOne, pgOne, pgTwo].map((w) => w.load1m?.toFixed(2)).join(' / ')})`,
      ['consumer', 'events/s', 'CPU ms per 1k events', 'x raw (rate)', 'raw CPU / its CPU'],
      [...row('SQLite, 1 worker', sqliteOne, 1), ...row('PostgreSQL, 1 worker', pgOne, 1), ...row('PostgreSQL, 2 workers', pgTwo, 2)]);

    saveSection('fleetScale', {
      devices: DEVICES, simulatorProcesses: PROCS, eventsPerSecondPerDevice: EPS, windowS: WINDOW_S, connectS, rollout,
      ingestion: { offeredEventsPerSec: offered, postgresWorkerCatchUpS: catchUpS, sqliteOneWorker: sqliteOne, postgresOneWorker: pgOne, postgresTwoWorkers: pgTwo }, loadAtEnd: load(),
    }, 'node dist/bench/fleet-scale.js');
  } finally {
    for (const p of procs.reverse()) await p.stop('SIGTERM', 15_000).catch(() => undefined);
    await broker.close();
    await pg?.close();
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
