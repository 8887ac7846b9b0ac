// End to end, a corrupt database (docs/store.md "A corrupt file: what is salvaged"): a real
// `perch serve` uploads its first events to a real `perch fleet serve` through a real Mosquitto,
// stops, takes more events offline, and a page of its outbox is overwritten. Started again on that
// data directory it salvages the events on intact pages, uploads them with their seqs and ids,
// and its new events (the store.corrupt incident first) get seqs the fleet has not seen, so the
// fleet stores them instead of dropping them as duplicates of the first upload.
import assert from 'node:assert/strict';
import Database from 'better-sqlite3';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { DB_FILE } from '../../cloud-sync/fleet/store/sqlite-store.js';
import { openStore, type PerchStore } from '../../runtime/store/store.js';
import { spawnFleet } from '../fleet/harness.js';
import { startMosquitto, type Mosquitto } from '../helpers/mosquitto.js';
import { servePerch, writeDeviceConfig } from '../helpers/perch-process.js';
import { TempRepository } from '../helpers/repository.js';
import { waitFor } from '../helpers/wait.js';
import { Child, metricValue, scrape } from '../helpers/wire.js';
import { leafRowids, overwritePages, pagesOf } from '../store/helpers/damage.js';

let broker: Mosquitto;
let repo: TempRepository;
const temp: string[] = [];
const children: Child[] = [];

before(async () => {
  broker = await startMosquitto();
  repo = new TempRepository(); // no models: the device only uploads
});
after(async () => {
  for (const c of children) await c.kill();
  await broker.close();
  repo.remove();
  for (const d of temp) rmSync(d, { recursive: true, force: true });
});

function tempDir(prefix: string): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  temp.push(d);
  return d;
}

interface Written {
  seq: number;
  eventId: string;
  payload: string;
}

async function append(dataDir: string, from: number, n: number): Promise<Written[]> {
  const store: PerchStore = openStore({ dataDir });
  try {
    return await Promise.all(
      Array.from({ length: n }, async (_, k) => {
        const payload = { i: from + k, pad: 'q'.repeat(100) };
        return { ...(await store.outbox.append('test.salvage', payload)), payload: JSON.stringify(payload) };
      }),
    );
  } finally {
    await store.close();
  }
}

async function untilOutboxEmpty(baseUrl: string): Promise<void> {
  let last = '';
  await waitFor(async () => {
    const text = await scrape(baseUrl);
    const g = ['perch_outbox_events', 'perch_outbox_unsent_events', 'perch_outbox_awaiting_ack_events'].map((m) => metricValue(text, m));
    last = JSON.stringify(g);
    return g.every((v) => v === 0);
  }, 120_000, () => `the outbox empty (have ${last})`, 25);
}

interface FleetRow {
  seq: number;
  event_id: string;
  type: string;
  payload: string;
}

test('a page of the outbox overwritten while the device was off: the rest is uploaded with its seqs and ids, and new events are stored, not taken for duplicates', async () => {
  const deviceId = `salvage-${randomUUID().slice(0, 8)}`;
  const prefix = 'salvage/v1';
  const dataDir = tempDir('perch-e2e-salvage-');
  const fleetDir = tempDir('perch-e2e-fleet-');
  const configFile = writeDeviceConfig({ deviceId, dataDir, repository: repo.dir, mqttUrl: broker.url, cloud: { topicPrefix: prefix } });
  const fleet = spawnFleet(['serve', '--url', broker.url, '--progress-ms', '0', '--store', fleetDir, '--prefix', prefix]);
  children.push(fleet);
  await waitFor(() => !fleet.running || fleet.logLines().some((l) => l.msg === 'subscribed'), 90_000, () => `fleet serve subscribed:\n${fleet.stderr}`);
  assert.ok(fleet.running, fleet.stderr);
  const fleetDb = new Database(join(fleetDir, DB_FILE), { readonly: true, fileMustExist: true });
  fleetDb.pragma('busy_timeout = 5000');
  const rows = (): FleetRow[] => fleetDb.prepare('SELECT seq, event_id, type, payload FROM events WHERE device_id = ? ORDER BY seq').all(deviceId) as FleetRow[];
  try {
    // 1. The first events reach the fleet, and the device deletes them on its acks.
    const uploaded = await append(dataDir, 0, 200);
    let device = await servePerch(configFile, children);
    await untilOutboxEmpty(device.baseUrl);
    device.child.proc.kill('SIGTERM');
    assert.deepEqual(await device.child.exited, { code: 0, signal: null });
    const before = rows();
    assert.ok(uploaded.every((w) => before.some((r) => r.seq === w.seq && r.event_id === w.eventId)));
    const lastUploaded = Math.max(...before.map((r) => r.seq));

    // 2. Offline: more events acknowledged, then a page of the outbox in the middle overwritten.
    const offline = await append(dataDir, 200, 1500);
    const file = join(dataDir, 'perch.db');
    const leaves = pagesOf(file, 'outbox', 'leaf');
    const image = readFileSync(file);
    const victim = leaves[Math.floor(leaves.length / 2)] as number;
    const lost = new Set(leafRowids(image, victim));
    overwritePages(file, [victim]);
    const kept = offline.filter((w) => !lost.has(w.seq));
    assert.ok(lost.size > 0 && kept.length > 1000);

    // 3. Started again: salvaged, moved aside, uploaded.
    device = await servePerch(configFile, children);
    const line = device.child.logLines().find((l) => l.msg?.toString().startsWith('corrupt database moved aside'));
    assert.ok(line, device.child.stdout.slice(-2000));
    assert.equal(line.salvaged, kept.length);
    assert.equal(line.lost, lost.size);
    await untilOutboxEmpty(device.baseUrl);
    device.child.proc.kill('SIGTERM');
    await device.child.exited;

    const all = rows();
    const bySeq = new Map(all.map((r) => [r.seq, r]));
    for (const w of kept) {
      const r = bySeq.get(w.seq);
      assert.ok(r, `salvaged seq ${w.seq} stored`);
      assert.equal(r.event_id, w.eventId);
      assert.equal(r.payload, w.payload);
    }
    for (const s of lost) assert.ok(!bySeq.has(s), `seq ${s} was on the overwritten page`);
    // The incident itself is a new event: its seq is past every seq the device used, so the fleet stored it.
    const incident = all.find((r) => r.type === 'store.corrupt');
    assert.ok(incident, `store.corrupt stored; types: ${[...new Set(all.map((r) => r.type))].join(', ')}`);
    const lastOffline = Math.max(...offline.map((w) => w.seq));
    assert.ok(incident.seq > lastOffline && lastOffline > lastUploaded);
    assert.equal((JSON.parse(incident.payload) as { salvaged: number }).salvaged, kept.length);
  } finally {
    fleetDb.close();
    await fleet.kill();
  }
});
