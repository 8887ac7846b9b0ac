// The crash campaign (issue 12; docs/reliability.md): `perch serve`, synced with a real
// Mosquitto, is SIGKILLed again and again (a power cut) while WebSocket clients emit events as
// fast as they are acknowledged; it is started again on the same data dir each time. Figures:
// events acknowledged, delivered to the cloud-side consumer, lost (acknowledged and never
// delivered: must be 0), duplicates (at-least-once: counted, allowed), restart times.
// Bounded: PERCH_CRASH_KILLS kills (10), each after 1-3 s of emitting (seeded), then at most
// 60 s for the backlog to drain. Writes build/bench/crash.json.
// Run: npm run build && node dist/bench/reliability/crash.js
import { mkdtempSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { rng } from '../../test/helpers/models.js';
import { writeRunFile } from '../lib/results.js';
import { percentile, printTable, sleep } from '../lib/stats.js';
import { awaitDelivery, configPath, emitters, eventsConsumer, serve, startMosquitto, tearDown, writeConfig, type Device } from './device.js';

const KILLS = Number(process.env.PERCH_CRASH_KILLS ?? 10);
const CLIENTS = 4;
const WINDOW = 32;

for (const sig of ['SIGTERM', 'SIGINT'] as const) process.once(sig, () => process.exit(1));

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'perch-crash-'));
  const broker = await startMosquitto();
  const deviceId = `crash-${process.pid}`;
  const consumer = await eventsConsumer(broker.url, deviceId);
  writeConfig(configPath(dir), deviceId, join(dir, 'data'), broker.url);
  const random = rng(12);
  const startMs: number[] = [];
  let device: Device = await serve(configPath(dir));
  startMs.push(device.startMs);
  const load0 = loadavg()[0] ?? 0;
  const emit = emitters(() => device.wsUrl, `run${Date.now()}`, CLIENTS, WINDOW);
  try {
    for (let k = 0; k < KILLS; k++) {
      const before = emit.ackedCount;
      await sleep(1000 + Math.floor(random() * 2000));
      await device.child.kill(); // SIGKILL
      console.log(`kill ${k + 1}/${KILLS}: ${emit.ackedCount - before} events acknowledged since the last start (${emit.ackedCount} in all)`);
      device = await serve(configPath(dir));
      startMs.push(device.startMs);
    }
    await sleep(1000);
    await emit.stop();
    const d = await awaitDelivery(emit.counts.acked, consumer, 60_000);
    const load1 = loadavg()[0] ?? 0;
    const row = {
      kills: KILLS,
      ...d,
      refused: emit.counts.refused,
      unansweredAtKills: emit.counts.unanswered,
      restartP50Ms: Math.round(percentile(startMs.slice(1), 50)),
      restartMaxMs: Math.round(Math.max(...startMs.slice(1))),
      load: [Number(load0.toFixed(1)), Number(load1.toFixed(1))],
    };
    printTable(
      `Crash campaign: ${KILLS} SIGKILLs while ${CLIENTS} WebSocket clients emit (${WINDOW} in flight each); aim: lost 0`,
      ['acknowledged', 'delivered (unique)', 'lost', 'duplicates', 'unanswered at kills', 'restart p50 / max ms', 'load'],
      [[String(row.acked), String(row.deliveredUnique), String(row.lost), String(row.duplicates), String(row.unansweredAtKills), `${row.restartP50Ms} / ${row.restartMaxMs}`, row.load.join('-')]],
    );
    console.log(`lost: ${row.lost === 0 ? 'MET (none)' : `NOT MET (${row.lost})`}; delivery waited ${d.waitedMs} ms after the last emit`);
    writeRunFile('crash', row);
  } finally {
    await tearDown({ clients: [emit], device, consumer, broker, dir });
  }
}

await main();
