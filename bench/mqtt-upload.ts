// Upload benchmark (issue 5): how fast a device drains an offline backlog of 100,000 events to
// the broker, next to raw mqtt.js publishing QoS 1 messages of the same size to the same
// Mosquitto in the same run (docs/design.md house style 10).
//   Perch: a real `perch serve` with cloud sync on, pointed at a broker that is down; 100,000
//          events emitted over WebSocket (group commit makes that seconds); then the broker
//          starts. The consumer acks what it receives like `perch fleet serve` (events/ack, no
//          database: the fleet's SQLite is not what is compared), and the device deletes events
//          only at those acks (cloud.delivery.ack 'fleet', the default). Timed from the device's
//          connect (the `ts` of its online status) to its outbox being empty (perch_outbox_events
//          0, polled once the consumer has all 100,000). batchSize 1 (target) and 100.
//   raw:   one mqtt.js client publishing 100,000 QoS 1 messages, each the JSON the device sends
//          with batchSize 1, with the uploader's in-flight window (64 unacknowledged), to a
//          consumer on the same broker; timed from the first publish to the last arrival.
// Target: Perch (batchSize 1) >= 0.7 x raw. Run: node dist/bench/mqtt-upload.js
// PERCH_BENCH_UPLOAD_EVENTS (100000) and PERCH_BENCH_ROUNDS (2) change the size of the run.
// Then the re-send cost (issue 11): a broker configured like packaging/mosquitto (autosave on
// every change) SIGKILLed in the middle of a 20,000-event upload and restarted at once, the
// consumer on a shared subscription (what fleet serve uses by default, and what Mosquitto
// forgets across a restart): events the device sent again because no ack came, against the
// ones that were needed (not already at the consumer).
import { randomUUID } from 'node:crypto';
import { cpus } from 'node:os';
import { topics } from '../cloud-sync/protocol/index.js';
import { startMosquitto, type Mosquitto } from '../test/helpers/mosquitto.js';
import { BenchWs } from './lib/clients.js';
import { connectBench, eventCounter, publishWindowed } from './lib/mqtt-clients.js';
import { startDevice, type Device } from './lib/mqtt-device.js';
import { saveSection } from './lib/results.js';
import { median, perSecond, printTable, ratio, spread } from './lib/stats.js';

const N = Number(process.env.PERCH_BENCH_UPLOAD_EVENTS ?? 100_000);
const ROUNDS = Number(process.env.PERCH_BENCH_ROUNDS ?? 2);
const PREFIX = 'perch/v1';
const TYPE = 'sensor.reading';
/** cloud-sync/agent/uploader.ts maxInflightBatches default: the raw client gets the same window. */
const WINDOW = 64;
const WS_CONNECTIONS = 8;
const WS_INFLIGHT = 128;
const DRAIN_TIMEOUT_MS = 60_000;
const payload = (n: number) => ({ sensor: 'cam-1', value: 0.5, n });

interface Run {
  eventsPerSec: number;
  ms: number;
  messages: number;
  bytesPerMessage: number;
  duplicates: number;
}

/** Emits N events over several WebSocket connections, each with many emits outstanding. */
async function emitBacklog(wsUrl: string, count = N): Promise<number> {
  const t0 = performance.now();
  let next = 0;
  const conns = await Promise.all(Array.from({ length: WS_CONNECTIONS }, () => BenchWs.connect(wsUrl)));
  try {
    await Promise.all(
      conns.flatMap((ws, c) =>
        Array.from({ length: WS_INFLIGHT }, async (_, k) => {
          for (let n = next++; n < count; n = next++) {
            const id = `${c}-${k}-${n}`;
            await ws.send(id, JSON.stringify({ id, op: 'emit', type: TYPE, payload: payload(n) }));
          }
        }),
      ),
    );
  } finally {
    await Promise.all(conns.map((ws) => ws.close()));
  }
  return performance.now() - t0;
}

async function perchRun(broker: Mosquitto, batchSize: number): Promise<Run & { emitMs: number; reconnectMs: number }> {
  const deviceId = `bench-up-${randomUUID().slice(0, 8)}`;
  const t = topics(PREFIX, deviceId);
  // Subscribed while the broker is up; the session (clean: false) keeps it across the restart.
  const consumer = await eventCounter(broker.url, `consumer-${deviceId}`, t.events, TYPE, N, t.status, t.eventsAck);
  let device: Device | null = null;
  try {
    await broker.stop();
    device = await startDevice({
      brokerUrl: broker.url,
      deviceId,
      // PERCH_BENCH_ACK=broker: delete at the PUBACK (the comparison with the delivery before issue 11).
      config: { cloud: { reconnect: { minMs: 20, maxMs: 100 }, upload: { batchSize }, delivery: { ack: process.env.PERCH_BENCH_ACK === 'broker' ? 'broker' : 'fleet' } } },
    });
    const emitMs = await emitBacklog(device.wsUrl);
    const restartedAt = Date.now();
    await broker.restart();
    await consumer.done(DRAIN_TIMEOUT_MS);
    if (!consumer.online) throw new Error('no online status seen from the device');
    // The consumer's last arrival, as wall-clock ms (printed: how much of the time is the acks' tail).
    const arrivedWall = Date.now() - (performance.now() - (consumer.doneAt as number));
    await outboxEmpty(device.port, DRAIN_TIMEOUT_MS);
    // Both are wall-clock ms on this machine: the device's connect and its outbox seen empty.
    const ms = Date.now() - consumer.online.ts;
    console.log(`    batchSize ${batchSize}: last event at the consumer after ${arrivedWall - consumer.online.ts} ms, outbox empty after ${ms} ms`);
    return {
      eventsPerSec: N / (ms / 1000),
      ms,
      messages: consumer.messages,
      bytesPerMessage: consumer.payloadBytes / consumer.messages,
      duplicates: consumer.duplicates,
      emitMs,
      reconnectMs: consumer.online.ts - restartedAt,
    };
  } finally {
    await device?.stop();
    await consumer.close();
    if (!broker.running) await broker.restart();
  }
}

/** Polls the device's perch_outbox_events every 5 ms until 0. */
async function outboxEmpty(port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    if (/^perch_outbox_events 0$/m.test(text)) return;
    if (Date.now() > deadline) throw new Error('the device outbox did not empty');
    await new Promise((r) => setTimeout(r, 5));
  }
}

interface ResendRun {
  events: number;
  /** Events the device sent again because no fleet ack came (its 'sending again' log lines). */
  resent: number;
  /** Copies the consumer got of seqs it already had. */
  duplicates: number;
  /** Re-sent events that were not duplicates: the broker had lost them. */
  lost: number;
  ms: number;
}

/**
 * A broker like packaging/mosquitto.conf (autosave on every change, a large queue) SIGKILLed when
 * the consumer has 30 % of a 20,000-event backlog, and restarted at once.
 */
async function resendRun(batchSize: number): Promise<ResendRun> {
  const events = 20_000;
  const broker = await startMosquitto({ extraConfig: 'max_queued_messages 100000\nmax_inflight_messages 100\nset_tcp_nodelay true' });
  const deviceId = `bench-resend-${randomUUID().slice(0, 8)}`;
  const t = topics(PREFIX, deviceId);
  // Through a shared subscription, as `perch fleet serve` reads events by default.
  const consumer = await eventCounter(broker.url, `consumer-${deviceId}`, `$share/bench/${t.events}`, TYPE, events, t.status, t.eventsAck, true);
  let device: Device | null = null;
  try {
    await broker.stop();
    device = await startDevice({
      brokerUrl: broker.url,
      deviceId,
      config: { cloud: { reconnect: { minMs: 20, maxMs: 100 }, upload: { batchSize }, delivery: { ackTimeoutMs: 2000 } } },
    });
    await emitBacklog(device.wsUrl, events);
    await broker.restart();
    const t0 = Date.now();
    while (consumer.unique < events * 0.3) await new Promise((r) => setTimeout(r, 2));
    await broker.kill();
    await broker.restart();
    await consumer.done(DRAIN_TIMEOUT_MS);
    await outboxEmpty(device.port, DRAIN_TIMEOUT_MS);
    const resent = device.lines.filter((l) => l.msg === 'no fleet ack in time; sending again').reduce((n, l) => n + Number(l.count), 0);
    return { events, resent, duplicates: consumer.duplicates, lost: resent - Math.min(resent, consumer.duplicates), ms: Date.now() - t0 };
  } finally {
    await device?.stop();
    await consumer.close();
    await broker.close();
  }
}

async function rawRun(broker: Mosquitto): Promise<Run> {
  const deviceId = `bench-raw-${randomUUID().slice(0, 8)}`;
  const topic = topics(PREFIX, deviceId).events;
  const consumer = await eventCounter(broker.url, `consumer-${deviceId}`, topic, TYPE, N);
  const pub = await connectBench(broker.url, { clientId: deviceId, clean: false });
  try {
    const started = performance.now();
    // The message the device sends with batchSize 1, built per message as an application would.
    const make = (i: number) =>
      JSON.stringify({ deviceId, events: [{ id: randomUUID(), seq: i + 1, ts: Date.now(), type: TYPE, payload: payload(i) }] });
    await publishWindowed(pub, topic, N, WINDOW, make);
    const doneAt = await consumer.done(DRAIN_TIMEOUT_MS);
    const ms = doneAt - started;
    return { eventsPerSec: N / (ms / 1000), ms, messages: consumer.messages, bytesPerMessage: consumer.payloadBytes / consumer.messages, duplicates: consumer.duplicates };
  } finally {
    await pub.endAsync(true);
    await consumer.close();
  }
}

async function main(): Promise<void> {
  console.log(`# mqtt upload benchmark: node ${process.version}, ${cpus().length} cpus (${cpus()[0]?.model ?? '?'})`);
  console.log(`# ${N} events, QoS 1, in-flight window ${WINDOW}, ${ROUNDS} interleaved rounds; broker: local Mosquitto (autosave off during the run)`);
  // autosave after every change (the test default) would time the broker's disk, not the clients;
  // no queue limit, so nothing is dropped while the consumer reconnects after the restart.
  const broker = await startMosquitto({ autosaveChanges: 1_000_000_000, extraConfig: 'max_queued_messages 0' });
  const raw: Run[] = [];
  const b1: (Run & { emitMs: number; reconnectMs: number })[] = [];
  const b100: (Run & { emitMs: number; reconnectMs: number })[] = [];
  try {
    for (let r = 0; r < ROUNDS; r++) {
      raw.push(await rawRun(broker));
      console.log(`  round ${r + 1}: raw ${perSecond(raw.at(-1)!.eventsPerSec)} msg/s`);
      b1.push(await perchRun(broker, 1));
      console.log(`  round ${r + 1}: perch batchSize 1 ${perSecond(b1.at(-1)!.eventsPerSec)} events/s (backlog emitted in ${Math.round(b1.at(-1)!.emitMs)} ms)`);
      b100.push(await perchRun(broker, 100));
      console.log(`  round ${r + 1}: perch batchSize 100 ${perSecond(b100.at(-1)!.eventsPerSec)} events/s`);
    }
  } finally {
    await broker.close();
  }

  const rates = (runs: Run[]) => runs.map((x) => x.eventsPerSec);
  const ratios = (runs: Run[]) => runs.map((x, i) => x.eventsPerSec / (raw[i] as Run).eventsPerSec);
  const row = (name: string, runs: Run[], target: string) => {
    const rs = ratios(runs);
    return [
      name,
      perSecond(median(rates(runs))),
      spread(rates(runs), 0),
      String(Math.round(median(runs.map((x) => x.bytesPerMessage)))),
      String(median(runs.map((x) => x.messages))),
      ratio(median(rs)),
      spread(rs),
      target,
      target === '-' ? '-' : median(rs) >= 0.7 ? 'yes' : 'NO',
    ];
  };
  printTable(
    `Backlog upload, ${N.toLocaleString('en-US')} events, median of ${ROUNDS} rounds (ratio = Perch / raw of the same round)`,
    ['side', 'events/s', 'range', 'bytes/msg', 'messages', 'x raw', 'ratio range', 'target', 'met'],
    [
      [`raw mqtt.js QoS 1, window ${WINDOW}`, perSecond(median(rates(raw))), spread(rates(raw), 0), String(Math.round(median(raw.map((x) => x.bytesPerMessage)))), String(N), '1.00', '-', '-', '-'],
      row('Perch batchSize 1', b1, '>= 0.7'),
      row('Perch batchSize 100', b100, '-'),
    ],
  );
  console.log(`\n  backlog of ${N} built over WebSocket in ${Math.round(median(b1.map((x) => x.emitMs)))} ms (median); device connect after broker start: ${Math.round(median(b1.map((x) => x.reconnectMs)))} ms (not in the timing)`);
  console.log(`  duplicates seen by the consumer: Perch ${[...b1, ...b100].reduce((s, x) => s + x.duplicates, 0)}, raw ${raw.reduce((s, x) => s + x.duplicates, 0)}`);

  const resends: ResendRun[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    resends.push(await resendRun(100));
    const x = resends.at(-1) as ResendRun;
    console.log(`  re-send round ${r + 1}: broker SIGKILLed at 30 % of ${x.events}: re-sent ${x.resent}, duplicates at the consumer ${x.duplicates}, lost by the broker (re-sent and needed) ${x.lost}, all acked ${x.ms} ms after the kill point`);
  }

  saveSection(
    'mqttUpload',
    {
      events: N,
      rounds: ROUNDS,
      window: WINDOW,
      raw,
      perchBatch1: b1,
      perchBatch100: b100,
      ratioBatch1: median(ratios(b1)),
      ratioBatch100: median(ratios(b100)),
      target: 0.7,
      met: median(ratios(b1)) >= 0.7,
      resendAfterBrokerKill: resends,
    },
    'node dist/bench/mqtt-upload.js',
  );
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
