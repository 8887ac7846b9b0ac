import assert from 'node:assert/strict';
import { test } from 'node:test';
import { OUTBOX_DROPPED_EVENT, startDropReporter } from '../../runtime/store/outbox-drop-reporter.js';
import { FakeClock } from '../helpers/fake-clock.js';
import { waitFor } from '../helpers/wait.js';
import { storeHarness } from './helpers/store-harness.js';

const settle = () => new Promise<void>((resolve) => setImmediate(resolve));

void test('drop reporter: records drops as coalesced outbox.dropped events, at most one per interval', async () => {
  const clock = new FakeClock();
  // A budget of about 10 events of 100 bytes: the backlog sits at the budget, the worst case.
  const h = await storeHarness({ clock, outboxLimits: { maxEventBytes: 500, ttlSeconds: 3600, maxBytes: 1000, overflow: 'drop-oldest' } });
  try {
    const { outbox } = h.store;
    const reporter = startDropReporter(outbox, { clock, minIntervalMs: 60_000 });
    for (let i = 0; i < 10; i++) await outbox.append('t', 'x'.repeat(97));
    await outbox.append('t', 'x'.repeat(97)); // drops seq 1
    clock.advance(0); // the first report goes out at once
    await settle();
    let reports = (await outbox.claim(100)).filter((e) => e.type === OUTBOX_DROPPED_EVENT);
    assert.equal(reports.length, 1);
    assert.deepEqual(reports[0]?.payload, { ttl: 0, overflow: 1, bytes: 100, byType: { '*': 1 } });
    await outbox.release(reports.map((e) => e.seq));
    await outbox.release((await outbox.claim(100)).map((e) => e.seq));

    // More drops inside the interval, the report itself included, are summed, not reported one by one.
    for (let i = 0; i < 5; i++) await outbox.append('t', 'x'.repeat(97));
    clock.advance(30_000);
    await settle();
    assert.equal((await outbox.claim(100)).filter((e) => e.type === OUTBOX_DROPPED_EVENT && e.seq > (reports[0]?.seq ?? 0)).length, 0);
    await outbox.release((await outbox.claim(100)).map((e) => e.seq));
    const before = outbox.stats().dropped.overflow;
    clock.advance(30_000);
    await settle();
    reports = (await outbox.claim(100)).filter((e) => e.type === OUTBOX_DROPPED_EVENT);
    const latest = reports.at(-1)?.payload as { overflow: number; ttl: number };
    assert.ok(latest.overflow >= 5, `expected the summed drops, got ${JSON.stringify(latest)}`);
    assert.ok(before >= 6);
    await reporter.stop();
    assert.equal(clock.pending, 0);
  } finally {
    await h.destroy();
  }
});

void test('drop reporter: stop() reports what is pending without waiting for the timer', async () => {
  const clock = new FakeClock();
  const h = await storeHarness({ clock, outboxLimits: { maxEventBytes: 500, ttlSeconds: 10, maxBytes: 100_000 } });
  try {
    const { outbox } = h.store;
    const reporter = startDropReporter(outbox, { clock, minIntervalMs: 60_000 });
    await outbox.append('t', 1);
    clock.advance(11_000);
    await outbox.sweep(); // the report timer is due but the fake clock has not fired it
    assert.equal(clock.pending, 1);
    await reporter.stop();
    assert.equal(clock.pending, 0);
    const reports = (await outbox.claim(100)).filter((e) => e.type === OUTBOX_DROPPED_EVENT).map((e) => e.payload);
    assert.deepEqual(reports, [{ ttl: 1, overflow: 0, bytes: 2, byType: { '*': 1 } }]);
    await reporter.stop(); // idempotent: nothing more to report
    assert.equal(outbox.stats().count, 1);
  } finally {
    await h.destroy();
  }
});

void test('drop reporter: a report the outbox refuses (full of events never dropped) is kept and tried again an interval later', async () => {
  const clock = new FakeClock();
  const h = await storeHarness({ clock, outboxLimits: { maxEventBytes: 500, ttlSeconds: 10, maxBytes: 1000, overflowByType: { 'sensor.*': 'drop-oldest' } } });
  try {
    const { outbox } = h.store;
    const reporter = startDropReporter(outbox, { clock, minIntervalMs: 60_000 });
    await outbox.append('sensor.old', 'x'.repeat(94)); // 106 bytes, expires first
    clock.advance(11_000);
    for (let i = 0; i < 8; i++) await outbox.append('keep', 'x'.repeat(94)); // refuse-type, 100 bytes each
    await outbox.sweep(); // drops sensor.old (ttl); the report is due at once
    for (let i = 0; i < 2; i++) await outbox.append('keep', 'x'.repeat(94)); // take the room first: the budget is all refuse-type
    clock.advance(0);
    await waitFor(() => outbox.stats().refused === 1, 5000, 'the report refused');
    assert.equal(clock.pending, 1, 'tried again later');
    await outbox.ack([2]); // the fleet took one event: room again
    clock.advance(60_000);
    await waitFor(() => outbox.stats().count === 10, 5000, 'the report recorded');
    const reports = (await outbox.claim(100)).filter((e) => e.type === OUTBOX_DROPPED_EVENT).map((e) => e.payload);
    assert.deepEqual(reports, [{ ttl: 1, overflow: 0, bytes: 106, byType: { 'sensor.*': 1 } }]);
    assert.deepEqual(outbox.stats().byType, { 'sensor.*': { ttl: 1, overflow: 0, refused: 0 }, '*': { ttl: 0, overflow: 0, refused: 1 } });
    await reporter.stop();
  } finally {
    await h.destroy();
  }
});
