// End to end, nothing lost (docs/cloud-sync.md "Delivery guarantee"): a real `perch serve`
// uploads a backlog of 10,000 acknowledged events to real `perch fleet serve` processes through a
// real Mosquitto configured like packaging/mosquitto/mosquitto.conf, and in the middle of it the
// broker is SIGKILLed or SIGTERMed, or fleet serve or the device is SIGKILLed; with the shared
// subscription (the default) and with an unshared persistent session. After recovery the fleet
// store holds every event exactly once and the device's outbox is empty. Then two fleet serve
// workers share the load and one is SIGKILLed mid-stream.
//
// Each scenario has its own topic prefix, so no session or queued message of an earlier one can
// reach a later one. Apart from hitting the upload in its middle (the device's rate gives the
// test about 4 s for that, and it says so if it missed), nothing here counts on how fast the
// machine is: each step waits for the state it needs (events stored, the outbox's three gauges
// at 0), and the waits' limits are generous (they only bound a wait). The device re-sends when
// the fleet's ack is late by its own adaptive rule (docs/cloud-sync.md "Re-send"), not on a
// fixed short cycle.
import assert from 'node:assert/strict';
import Database from 'better-sqlite3';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { DB_FILE } from '../../cloud-sync/fleet/store/sqlite-store.js';
import { openStore } from '../../runtime/store/store.js';
import { spawnFleet } from '../fleet/harness.js';
import { startMosquitto, type Mosquitto } from '../helpers/mosquitto.js';
import { servePerch, writeDeviceConfig } from '../helpers/perch-process.js';
import { TempRepository } from '../helpers/repository.js';
import { waitFor } from '../helpers/wait.js';
import { Child, metricValue, scrape } from '../helpers/wire.js';

const N = 10_000;

let broker: Mosquitto;
let repo: TempRepository;
let scenario = 0;
const temp: string[] = [];
const children: Child[] = [];

before(async () => {
  broker = await startMosquitto({ extraConfig: 'max_queued_messages 100000\nmax_inflight_messages 100\nset_tcp_nodelay true' });
  repo = new TempRepository(); // no models: the device only uploads
});
after(async () => {
  for (const c of children) await c.kill();
  await broker.close();
  repo.remove();
  for (const d of temp) rmSync(d, { recursive: true, force: true });
});

/** waitFor every 25 ms: the conditions here read SQLite or scrape metrics. */
async function until(cond: () => boolean | Promise<boolean>, ms: number, what: () => string): Promise<void> {
  await waitFor(cond, ms, what, 25);
}

function tempDir(prefix: string): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  temp.push(d);
  return d;
}

/** A device data dir whose outbox holds `n` acknowledged events (append resolved for each). */
async function deviceWithBacklog(deviceId: string, prefix: string, n: number): Promise<string> {
  const dataDir = tempDir('perch-e2e-dev-');
  const store = openStore({ dataDir });
  for (let i = 0; i < n; i += 1000) {
    await Promise.all(Array.from({ length: Math.min(1000, n - i) }, (_, j) => store.outbox.append('test.backlog', { i: i + j })));
  }
  await store.close();
  return writeDeviceConfig({
    deviceId, dataDir, repository: repo.dir, mqttUrl: broker.url,
    cloud: {
      topicPrefix: prefix,
      // About 5 s for the backlog: slow enough to be hit in the middle by a test process starved
      // for seconds on a loaded machine (fleet serve's group commit keeps up with the device, so
      // the device's own rate sets the pace; at 4,000/s a device SIGKILL run found all stored).
      // The unshared scenarios absorb 4,000-7,500 re-sent duplicates after a fault at this rate
      // (four runs at load 5-14).
      upload: { batchSize: 100, maxEventsPerSecond: 2000 },
      // The first re-send after a fault comes 3 s or more after its PUBACK (not the default
      // 10 s, so a recovery takes seconds). The cap is well above how long acks take on a loaded
      // machine, so the timeout follows them (three times their smoothed time): a cap of 2 s
      // (ackTimeoutMs 1 s) was below it at load 9-14, so every waiting batch went again every
      // 2 s while the fleet worked through a backlog, and the unshared session queued each
      // re-send for it: 159,007 duplicates once, and the outbox not empty within its wait.
      delivery: { ackTimeoutMs: 3000, maxResendMs: 30_000 },
    },
  });
}

interface FleetServe {
  child: Child;
  args: string[];
}

async function startFleet(args: string[]): Promise<FleetServe> {
  const child = spawnFleet(['serve', '--url', broker.url, '--progress-ms', '0', ...args]);
  children.push(child);
  // A generous limit: a node process starting at load 20 took more than 20 s to subscribe.
  await until(() => !child.running || child.logLines().some((l) => l.msg === 'subscribed'), 90_000, () => `fleet serve subscribed:\n${child.stderr}`);
  assert.ok(child.running, child.stderr + child.stdout);
  return { child, args };
}

/** Read-only view of fleet.db while the serve processes write it. */
class FleetStore {
  private readonly db: Database.Database;
  private readonly countStmt: Database.Statement;
  constructor(dir: string, private readonly deviceId: string) {
    this.db = new Database(join(dir, DB_FILE), { readonly: true, fileMustExist: true });
    this.db.pragma('busy_timeout = 5000');
    this.countStmt = this.db.prepare('SELECT COUNT(*) FROM events WHERE device_id = ?').pluck();
  }
  count(): number {
    return this.countStmt.get(this.deviceId) as number;
  }
  rows(): { seq: number; type: string; payload: string }[] {
    return this.db.prepare('SELECT seq, type, payload FROM events WHERE device_id = ? ORDER BY seq').all(this.deviceId) as { seq: number; type: string; payload: string }[];
  }
  devicesIds(): string[] {
    return (this.db.prepare('SELECT DISTINCT device_id FROM events').pluck().all() as string[]);
  }
  close(): void {
    this.db.close();
  }
}

async function outboxGauges(baseUrl: string): Promise<{ events: number; unsent: number; awaiting: number }> {
  const text = await scrape(baseUrl);
  return {
    events: metricValue(text, 'perch_outbox_events'),
    unsent: metricValue(text, 'perch_outbox_unsent_events'),
    awaiting: metricValue(text, 'perch_outbox_awaiting_ack_events'),
  };
}

/** The device's outbox empty and nothing sent or awaiting the fleet: the state, not the first gauge to reach 0. */
async function untilOutboxEmpty(baseUrl: string): Promise<void> {
  let last = { events: -1, unsent: -1, awaiting: -1 };
  const empty = async (): Promise<boolean> => {
    last = await outboxGauges(baseUrl);
    return last.events === 0 && last.unsent === 0 && last.awaiting === 0;
  };
  await until(empty, 300_000, () => `the outbox empty (have ${JSON.stringify(last)})`);
}

function storedBy(fleets: FleetServe[]): { stored: number; duplicates: number } {
  const lines = fleets.flatMap((f) => f.child.logLines()).filter((l) => l.msg === 'events');
  return { stored: lines.reduce((n, l) => n + Number(l.stored), 0), duplicates: lines.reduce((n, l) => n + Number(l.duplicates), 0) };
}

/** Every one of the N events once, with its own payload, and nothing of another device. */
function assertExactlyOnce(store: FleetStore, deviceId: string): void {
  const rows = store.rows();
  assert.equal(rows.length, N);
  assert.ok(rows.every((r, i) => r.seq === i + 1 && r.type === 'test.backlog' && (JSON.parse(r.payload) as { i: number }).i === i), 'seqs 1..N, each with its payload');
  assert.deepEqual(store.devicesIds(), [deviceId]);
}

type Fault = 'broker SIGKILL' | 'broker SIGTERM' | 'fleet serve SIGKILL' | 'device SIGKILL';
const FAULTS: Fault[] = ['broker SIGKILL', 'broker SIGTERM', 'fleet serve SIGKILL', 'device SIGKILL'];

/** One device uploading its backlog to one fleet serve, with its own topic prefix and store. */
class Scenario {
  readonly deviceId = `dev-${randomUUID().slice(0, 8)}`;
  readonly fleets: FleetServe[] = [];
  private readonly n = ++scenario;
  private readonly prefix = `e2e${this.n}/v1`;
  private readonly fleetDir = tempDir('perch-e2e-fleet-');
  private configFile = '';
  private fleetArgs: string[] = [];
  store: FleetStore | null = null;
  device: { child: Child; baseUrl: string } | null = null;

  constructor(readonly shared: boolean) {}

  async start(): Promise<void> {
    this.configFile = await deviceWithBacklog(this.deviceId, this.prefix, N);
    this.fleetArgs = ['--store', this.fleetDir, '--prefix', this.prefix, ...(this.shared ? [] : ['--unshared', '--client-id', `fleet-${this.n}`])];
    this.fleets.push(await startFleet(this.fleetArgs));
    this.store = new FleetStore(this.fleetDir, this.deviceId);
    this.device = await servePerch(this.configFile, children);
  }

  get stored(): number {
    return (this.store as FleetStore).count();
  }

  async midway(): Promise<void> {
    await until(() => this.stored >= 2000, 120_000, () => `2000 stored (have ${this.stored})`);
    assert.ok(this.stored < N, 'hit in the middle of the upload');
  }

  async killFleet(): Promise<void> {
    await (this.fleets.at(-1) as FleetServe).child.kill();
    this.fleets.push(await startFleet(this.fleetArgs));
  }

  async killDevice(): Promise<void> {
    await (this.device as { child: Child }).child.kill();
    this.device = await servePerch(this.configFile, children);
  }

  /** Every event stored once, the device's outbox empty; returns the duplicates the store absorbed. */
  async recovered(): Promise<number> {
    // Generous limits: they bound waits for states that come (the re-sends after a fault, the
    // duplicates they bring to an unshared persistent session, the acks queued behind them), and
    // a loaded machine stretches all of it.
    await until(() => this.stored === N, 300_000, () => `all ${N} stored (have ${this.stored})`);
    const baseUrl = (this.device as { baseUrl: string }).baseUrl;
    await untilOutboxEmpty(baseUrl);
    assertExactlyOnce(this.store as FleetStore, this.deviceId);
    return storedBy(this.fleets).duplicates;
  }

  async close(): Promise<void> {
    this.store?.close();
    if (this.device) {
      this.device.child.proc.kill('SIGTERM');
      await this.device.child.exited;
    }
    for (const f of this.fleets) await f.child.kill();
  }
}

// Both subscription modes side by side in one test per fault (one broker fault hits both): half
// the scenarios' start-up and wait time.
for (const fault of FAULTS) {
  test(`${fault} mid-upload of ${N} events, shared subscription and unshared persistent session: the fleet holds each once, the outbox empties`, async (t) => {
    const runs = [new Scenario(true), new Scenario(false)];
    try {
      await Promise.all(runs.map((r) => r.start()));
      await Promise.all(runs.map((r) => r.midway()));
      if (fault === 'broker SIGKILL') {
        await broker.kill();
        await broker.restart();
      } else if (fault === 'broker SIGTERM') {
        await broker.stop();
        await broker.restart();
      } else if (fault === 'fleet serve SIGKILL') {
        await Promise.all(runs.map((r) => r.killFleet()));
      } else {
        await Promise.all(runs.map((r) => r.killDevice()));
      }
      const duplicates = await Promise.all(runs.map((r) => r.recovered()));
      t.diagnostic(`duplicates absorbed by the fleet store: shared ${duplicates[0]}, unshared ${duplicates[1]}`);
    } finally {
      for (const r of runs) await r.close();
    }
  });
}

test(`two fleet serve workers share ${N} events, one SIGKILLed mid-stream: nothing lost, nothing stored twice`, async (t) => {
  const n = ++scenario;
  const prefix = `e2e${n}/v1`;
  const deviceId = `dev-${randomUUID().slice(0, 8)}`;
  const fleetDir = tempDir('perch-e2e-fleet-');
  const configFile = await deviceWithBacklog(deviceId, prefix, N);
  // Clean sessions (the default): a killed worker leaves the share group at once. (A persistent
  // member stays in it and the broker queues its share: docs/fleet.md "Persistent sessions".)
  const fleets = [await startFleet(['--store', fleetDir, '--prefix', prefix]), await startFleet(['--store', fleetDir, '--prefix', prefix])];
  const store = new FleetStore(fleetDir, deviceId);
  const device = await servePerch(configFile, children);
  try {
    // Mid-stream, and after each worker has committed a share (a worker slowed down by a busy
    // machine may not have committed any of its share by the 3000th event: then killing it would
    // not test what this test is about).
    const bothStored = (): boolean => fleets.every((f) => storedBy([f]).stored > 0);
    await until(() => store.count() >= 3000 && bothStored(), 180_000, () => `3000 stored and some by each worker (have ${store.count()}, per worker ${fleets.map((f) => storedBy([f]).stored)})`);
    await (fleets[0] as FleetServe).child.kill();
    await until(() => store.count() === N, 300_000, () => `all ${N} stored (have ${store.count()})`);
    await untilOutboxEmpty(device.baseUrl);
    assertExactlyOnce(store, deviceId);
    const perWorker = fleets.map((f) => storedBy([f]).stored);
    assert.ok(perWorker.every((s) => s > 0), `both workers stored some: ${perWorker}`);
    t.diagnostic(`stored per worker ${perWorker}, duplicates ${storedBy(fleets).duplicates}`);
  } finally {
    store.close();
    device.child.proc.kill('SIGTERM');
    await device.child.exited;
    for (const f of fleets) await f.child.kill();
  }
});
