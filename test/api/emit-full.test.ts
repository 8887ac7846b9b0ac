// A full outbox over the real WebSocket API (docs/store.md "Retention"): refuse-type events get
// PERCH_ERR_STORE_FULL and nothing acknowledged is dropped; drop-oldest types make room only
// among themselves; the drops and refusals are counted by type, reported as an `outbox.dropped`
// event, and the runtime's own events are refused without harm.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { WsClient, type WsAnswer } from '../helpers/clients.js';
import { clsInput } from '../helpers/models.js';
import { storedEvents } from '../helpers/outbox-events.js';
import { MODEL_FILES } from '../helpers/paths.js';
import { TempRepository } from '../helpers/repository.js';
import { startRuntime, type TestRuntime } from '../helpers/runtime.js';
import { waitFor } from '../helpers/wait.js';
import { metricValue, scrape } from '../helpers/wire.js';

const PAD = 'x'.repeat(400);

const codeOf = (a: WsAnswer) => (a.body.error as { code?: string } | undefined)?.code;

async function emitUntilRefused(ws: WsClient, type: string, pad = PAD, max = 1000): Promise<{ acked: number[]; refusal: WsAnswer }> {
  const acked: number[] = [];
  for (let i = 0; i < max; i++) {
    const a = await ws.request({ op: 'emit', type, payload: { i, pad } });
    if (!a.ok) return { acked, refusal: a };
    acked.push(a.body.seq as number);
  }
  throw new Error(`${type}: ${max} emits and none refused`);
}

async function withRuntime(overflow: Record<string, unknown>, fn: (rt: TestRuntime, ws: WsClient) => Promise<void>): Promise<void> {
  const repo = new TempRepository({ cls: { versions: { 1: MODEL_FILES.ocrCls } } });
  const rt = await startRuntime(repo.dir, { store: { outbox: { maxBytes: 8192, maxEventBytes: 1024, ...overflow } } });
  const ws = await WsClient.connect(rt.wsUrl);
  try {
    await fn(rt, ws);
  } finally {
    await ws.close();
    await rt.stop();
    repo.remove();
  }
}

describe('emit into a full outbox', () => {
  test('default (refuse): the emit that does not fit gets PERCH_ERR_STORE_FULL; every acknowledged event stays; inference serves', () =>
    withRuntime({}, async (rt, ws) => {
      const { acked, refusal } = await emitUntilRefused(ws, 'door');
      assert.ok(acked.length >= 10, `only ${acked.length} fitted`);
      assert.equal(refusal.ok, false);
      assert.equal(codeOf(refusal), 'PERCH_ERR_STORE_FULL');
      assert.match((refusal.body.error as { message: string }).message, /outbox full/);
      // More refusals, no drop: the stored doors are exactly the acknowledged ones.
      for (let i = 0; i < 5; i++) assert.equal(codeOf(await ws.request({ op: 'emit', type: 'door', payload: { pad: PAD } })), 'PERCH_ERR_STORE_FULL');
      const doors = (await storedEvents(rt.runtime.store.outbox)).filter((e) => e.type === 'door').map((e) => e.seq);
      assert.deepEqual(doors, acked);
      const text = await scrape(rt.baseUrl);
      assert.equal(metricValue(text, 'perch_outbox_refused_total', { type: '*' }), 6);
      assert.equal(metricValue(text, 'perch_outbox_dropped_total', { reason: 'overflow' }), 0);
      // Small events fill what is left; then the runtime's own events are refused too (a
      // config.applied of a few hundred bytes), and the runtime neither throws nor stops.
      const small = await emitUntilRefused(ws, 'd', '');
      assert.equal(codeOf(small.refusal), 'PERCH_ERR_STORE_FULL');
      acked.push(...small.acked);
      assert.ok(rt.runtime.applyLiveConfig({ log: { level: 'warn' } }).ok);
      await waitFor(async () => metricValue(await scrape(rt.baseUrl), 'perch_outbox_refused_total', { type: '*' }) === 8, 5000, 'config.applied refused');
      assert.ok((await ws.infer('cls', clsInput(1))).ok);
      // The fleet acks some (the uploader's ack): room again, seqs go on from the last acknowledged one.
      await rt.runtime.store.outbox.ack(acked.slice(0, 2));
      const after = await ws.request({ op: 'emit', type: 'door', payload: { pad: PAD } });
      assert.ok(after.ok, JSON.stringify(after.body));
      assert.equal(after.body.seq, (acked.at(-1) as number) + 1);
    }));

  test('mixed: telemetry.* may be dropped, alarms may not; drops are counted by type and reported as outbox.dropped', () =>
    withRuntime({ overflowByType: { 'telemetry.*': 'drop-oldest' } }, async (rt, ws) => {
      const { outbox } = rt.runtime.store;
      // Fill the budget with telemetry: no emit is refused, the oldest telemetry goes.
      const telemetry: number[] = [];
      for (let i = 0; i < 40; i++) {
        const a = await ws.request({ op: 'emit', type: 'telemetry.temp', payload: { i, pad: PAD } });
        assert.ok(a.ok, JSON.stringify(a.body));
        telemetry.push(a.body.seq as number);
      }
      await waitFor(async () => (await storedEvents(outbox)).some((e) => e.type === 'outbox.dropped'), 5000, 'the drop reported');
      // Alarms push telemetry out until only alarms (and events never dropped) are left, then are refused.
      const { acked: alarms, refusal } = await emitUntilRefused(ws, 'alarm');
      assert.equal(codeOf(refusal), 'PERCH_ERR_STORE_FULL');
      assert.ok(alarms.length >= 10);
      const events = await storedEvents(outbox);
      assert.deepEqual(events.filter((e) => e.type === 'alarm').map((e) => e.seq), alarms, 'every acknowledged alarm is there');
      // Refused means even dropping all telemetry left would not make room: less than one alarm's worth.
      const alarmBytes = Math.min(...events.filter((e) => e.type === 'alarm').map((e) => e.bytes));
      const telemetryLeft = events.filter((e) => e.type.startsWith('telemetry.')).reduce((n, e) => n + e.bytes, 0);
      assert.ok(telemetryLeft < alarmBytes, `${telemetryLeft} bytes of telemetry left`);
      assert.equal(events.filter((e) => e.type === 'model.ready').length, 1, "the runtime's own event was never dropped");
      // Telemetry now has nothing of its own kind to push out: refused as well.
      assert.equal(codeOf(await ws.request({ op: 'emit', type: 'telemetry.rpm', payload: { pad: PAD } })), 'PERCH_ERR_STORE_FULL');
      const text = await scrape(rt.baseUrl);
      const telemetryStored = events.filter((e) => e.type.startsWith('telemetry.')).length;
      assert.equal(metricValue(text, 'perch_outbox_dropped_total', { reason: 'overflow', type: 'telemetry.*' }), telemetry.length - telemetryStored);
      assert.equal(metricValue(text, 'perch_outbox_dropped_total', { reason: 'overflow', type: '*' }), 0);
      assert.equal(metricValue(text, 'perch_outbox_refused_total', { type: '*' }), 1);
      assert.equal(metricValue(text, 'perch_outbox_refused_total', { type: 'telemetry.*' }), 1);
      // The first drop was reported at once, with its type (the later ones are summed for a minute).
      const report = events.find((e) => e.type === 'outbox.dropped');
      const payload = report?.payload as { overflow: number; byType: Record<string, number> };
      assert.ok(payload.overflow >= 1);
      assert.deepEqual(Object.keys(payload.byType), ['telemetry.*']);
      assert.equal(payload.byType['telemetry.*'], payload.overflow);
    }));
});
