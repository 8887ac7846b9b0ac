// The broker outage campaign (issue 12; docs/reliability.md): events flow from WebSocket clients
// through `perch serve` to a real Mosquitto and a cloud-side consumer; the broker is SIGKILLed
// (no chance to save) and started again on the same port while the clients go on emitting.
// Figures: the outbox backlog while the broker is down (it grows), how long it takes to drain
// once the broker is back, events acknowledged / delivered / lost (must be 0) / duplicates
// (at-least-once, docs/protocol.md: counted, allowed). Bounded: PERCH_OUTAGE_MS of outage
// (15 s) between 5 s of flow before and after, then at most 60 s to drain.
// Writes build/bench/broker-outage.json.
// Run: npm run build && node dist/bench/reliability/broker-outage.js
import { mkdtempSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { sumMetric } from '../lib/perch-server.js';
import { writeRunFile } from '../lib/results.js';
import { printTable, sleep } from '../lib/stats.js';
import { awaitDelivery, configPath, emitters, eventsConsumer, serve, startMosquitto, tearDown, waitFor, writeConfig } from './device.js';

const OUTAGE_MS = Number(process.env.PERCH_OUTAGE_MS ?? 15_000);
const RATE = Number(process.env.PERCH_OUTAGE_RATE ?? 500);

for (const sig of ['SIGTERM', 'SIGINT'] as const) process.once(sig, () => process.exit(1));

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'perch-outage-'));
  const broker = await startMosquitto();
  const deviceId = `outage-${process.pid}`;
  const consumer = await eventsConsumer(broker.url, deviceId);
  writeConfig(configPath(dir), deviceId, join(dir, 'data'), broker.url);
  const device = await serve(configPath(dir));
  const backlog = async (): Promise<number> => {
    try {
      return sumMetric(await (await fetch(`${device.baseUrl}/metrics`, { signal: AbortSignal.timeout(5000) })).text(), 'perch_outbox_events');
    } catch {
      return Number.NaN;
    }
  };
  const load0 = loadavg()[0] ?? 0;
  const emit = emitters(() => device.wsUrl, `run${Date.now()}`, 4, 16, RATE);
  try {
    await sleep(5000);
    const backlogBefore = await backlog();
    await broker.kill(); // SIGKILL
    const down0 = performance.now();
    let peak = 0;
    while (performance.now() - down0 < OUTAGE_MS) {
      await sleep(1000);
      peak = Math.max(peak, await backlog());
    }
    const ackedDuringOutage = emit.ackedCount;
    await broker.restart();
    const up0 = performance.now();
    await sleep(5000);
    await emit.stop();
    await waitFor(async () => (await backlog()) === 0, 60_000, 'the outbox drained', 200).catch(() => undefined);
    const drainMs = Math.round(performance.now() - up0);
    const d = await awaitDelivery(emit.counts.acked, consumer, 30_000);
    const row = {
      outageMs: OUTAGE_MS,
      ratePerSecond: RATE,
      backlogBefore,
      backlogPeak: peak,
      backlogAfter: await backlog(),
      drainMs,
      ...d,
      ackedWhenBrokerBack: ackedDuringOutage,
      refused: emit.counts.refused,
      load: [Number(load0.toFixed(1)), Number((loadavg()[0] ?? 0).toFixed(1))],
    };
    printTable(
      `Broker outage: Mosquitto SIGKILLed for ${OUTAGE_MS / 1000} s while ${RATE} events/s are emitted; aims: lost 0, backlog drains`,
      ['backlog before / peak / after', 'drained in ms', 'acknowledged', 'delivered (unique)', 'lost', 'duplicates', 'load'],
      [[`${row.backlogBefore} / ${row.backlogPeak} / ${row.backlogAfter}`, String(drainMs), String(row.acked), String(row.deliveredUnique), String(row.lost), String(row.duplicates), row.load.join('-')]],
    );
    console.log(`lost: ${row.lost === 0 ? 'MET (none)' : `NOT MET (${row.lost})`}; drained: ${row.backlogAfter === 0 ? 'MET' : 'NOT MET'}`);
    writeRunFile('broker-outage', row);
  } finally {
    await tearDown({ clients: [emit], device, consumer, broker, dir });
  }
}

await main();
