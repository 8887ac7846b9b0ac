// The disk-full campaign (issue 12; docs/reliability.md): `perch serve` with its data dir on a
// real small disk (a 64 MiB tmpfs; mounting needs root), offline (the broker stopped), while
// WebSocket clients emit events and an HTTP client runs inference. The disk is filled up
// (a filler file): events are refused with PERCH_ERR_STORE_FULL, inference goes on; the filler
// is deleted: events are acknowledged again (time to the first one); the broker comes back and
// every acknowledged event is delivered (lost must be 0). Bounded: PERCH_FULL_MS (10 s) full,
// a few seconds around it, at most 60 s to deliver. Writes build/bench/disk-full.json.
// Run (as root): npm run build && node dist/bench/reliability/disk-full.js
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { clsInput } from '../../test/helpers/models.js';
import { mountSmallDisk } from '../../test/helpers/small-disk.js';
import { writeRunFile } from '../lib/results.js';
import { printTable, sleep } from '../lib/stats.js';
import { awaitDelivery, configPath, emitters, eventsConsumer, serve, startMosquitto, tearDown, waitFor, writeConfig } from './device.js';

const FULL_MS = Number(process.env.PERCH_FULL_MS ?? 10_000);
const DISK_BYTES = 64 * 1024 * 1024;

for (const sig of ['SIGTERM', 'SIGINT'] as const) process.once(sig, () => process.exit(1));

/** One HTTP client running inference back to back; counts answers by status. */
function inferLoop(baseUrl: string): { counts: Record<string, number>; stop(): Promise<void> } {
  const input = clsInput(5)[0]!;
  const body = JSON.stringify({ inputs: [{ name: 'x', shape: input.shape, datatype: 'FP32', data: Array.from(input.data as Float32Array) }] });
  const counts: Record<string, number> = {};
  let running = true;
  const done = (async () => {
    while (running) {
      let key: string;
      try {
        const res = await fetch(`${baseUrl}/v2/models/pp-ocr-cls/infer`, { method: 'POST', body, headers: { 'content-type': 'application/json' }, signal: AbortSignal.timeout(10_000) });
        await res.arrayBuffer();
        key = String(res.status);
      } catch {
        key = 'error';
      }
      counts[key] = (counts[key] ?? 0) + 1;
    }
  })();
  return { counts, stop: async () => { running = false; await done; } };
}

const snapshot = (c: Record<string, number>): Record<string, number> => ({ ...c });
const diff = (a: Record<string, number>, b: Record<string, number>): Record<string, number> =>
  Object.fromEntries(Object.keys({ ...a, ...b }).map((k) => [k, (b[k] ?? 0) - (a[k] ?? 0)]).filter(([, v]) => v !== 0));

async function main(): Promise<void> {
  const disk = mountSmallDisk(DISK_BYTES);
  if (typeof disk === 'string') {
    console.log(`disk-full campaign NOT RUN: ${disk}. Run it as root (it mounts a ${DISK_BYTES / 1024 / 1024} MiB tmpfs).`);
    writeRunFile('disk-full', { notRun: disk });
    process.exitCode = 2;
    return;
  }
  const broker = await startMosquitto();
  const deviceId = `diskfull-${process.pid}`;
  const consumer = await eventsConsumer(broker.url, deviceId);
  writeConfig(configPath(disk.dir), deviceId, join(disk.dir, 'data'), broker.url);
  const device = await serve(configPath(disk.dir));
  const load0 = loadavg()[0] ?? 0;
  const emit = emitters(() => device.wsUrl, `run${Date.now()}`, 2, 8, 400);
  const infer = inferLoop(device.baseUrl);
  try {
    // Offline: the backlog stays on the device's disk.
    await broker.stop();
    await sleep(3000);
    const refusedBefore = snapshot(emit.counts.refused);
    const inferBefore = snapshot(infer.counts);
    disk.fill();
    const full0 = performance.now();
    await sleep(FULL_MS);
    const refusedFull = diff(refusedBefore, emit.counts.refused);
    const inferFull = diff(inferBefore, infer.counts);
    const alive = device.child.running;
    disk.unfill();
    const freed = performance.now();
    const ackedAtFree = emit.ackedCount;
    await waitFor(() => emit.ackedCount > ackedAtFree, 30_000, 'an event acknowledged after space came back', 20).catch(() => undefined);
    const recoveryMs = emit.ackedCount > ackedAtFree ? Math.round(emit.lastAckAt - freed) : Number.NaN;
    await sleep(2000);
    await emit.stop();
    await infer.stop();
    await broker.restart();
    const d = await awaitDelivery(emit.counts.acked, consumer, 60_000);
    const row = {
      diskMiB: DISK_BYTES / 1024 / 1024,
      fullMs: Math.round(freed - full0),
      refusedWhileFull: refusedFull,
      inferWhileFull: inferFull,
      aliveWhileFull: alive,
      recoveryMs,
      ...d,
      load: [Number(load0.toFixed(1)), Number((loadavg()[0] ?? 0).toFixed(1))],
    };
    printTable(
      `Disk full: ${row.diskMiB} MiB tmpfs filled for ${FULL_MS / 1000} s while events are emitted (offline) and inference runs; aims: STORE_FULL refusals, inference 200s, lost 0`,
      ['refused while full', 'inference while full', 'first ack after space, ms', 'acknowledged', 'delivered (unique)', 'lost', 'duplicates', 'load'],
      [[JSON.stringify(refusedFull), JSON.stringify(inferFull), String(recoveryMs), String(row.acked), String(row.deliveredUnique), String(row.lost), String(row.duplicates), row.load.join('-')]],
    );
    const met = {
      refused: (refusedFull.PERCH_ERR_STORE_FULL ?? 0) > 0,
      inference: (inferFull['200'] ?? 0) > 0 && Object.keys(inferFull).every((k) => k === '200'),
      recovered: Number.isFinite(recoveryMs),
      lost: row.lost === 0,
    };
    console.log(Object.entries(met).map(([k, v]) => `${k}: ${v ? 'MET' : 'NOT MET'}`).join(', '));
    writeRunFile('disk-full', { ...row, met });
  } finally {
    await tearDown({ clients: [emit, infer], device, consumer, broker });
    disk.unmount();
  }
}

await main();
