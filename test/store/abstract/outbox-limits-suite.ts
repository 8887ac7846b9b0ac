// The abstract outbox suite, second half: what the outbox drops or refuses and when (TTL, the byte
// budget and its per-type strategies, docs/config.md store.outbox), stats and drop listeners.
// Run by runOutboxSuite (outbox-suite.ts) for every implementation.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { DropCounts } from '../../../runtime/store/outbox.js';
import { appendN, appendSized, DROP_OLDEST, range, seqsOf, sized, withOutbox, type OutboxFactory } from './outbox-harness.js';

export function runOutboxLimitsSuite(name: string, factory: OutboxFactory): void {
  void describe(`Outbox limits: ${name}`, () => {
    void test('TTL: sweep drops events older than ttlSeconds, counts them by reason and tells the listeners', () =>
      withOutbox(factory, async ({ outbox }, clock) => {
        const heard: DropCounts[] = [];
        outbox.onDrop((d) => heard.push(d));
        await appendN(outbox, 3);
        clock.advance(10_000);
        await appendN(outbox, 2);
        assert.equal(outbox.stats().oldestAgeMs, 10_000);
        clock.advance(25_000); // first three are 35 s old, last two 25 s
        const dropped = await outbox.sweep();
        assert.deepEqual({ ttl: dropped.ttl, overflow: dropped.overflow }, { ttl: 3, overflow: 0 });
        assert.ok(dropped.bytes > 0);
        assert.deepEqual(heard, [dropped]);
        const s = outbox.stats();
        assert.equal(s.count, 2);
        assert.deepEqual(s.dropped, { ttl: 3, overflow: 0 });
        assert.deepEqual(dropped.byType, { '*': 3 });
        assert.deepEqual(s.byType, { '*': { ttl: 3, overflow: 0, refused: 0 } });
        assert.equal(s.oldestAgeMs, 25_000);
        assert.deepEqual(seqsOf(await outbox.claim(10)), [4, 5]);
        assert.deepEqual(await outbox.sweep(), { ttl: 0, overflow: 0, bytes: 0, byType: {} });
        assert.equal(heard.length, 1, 'no listener call when nothing was dropped');
      }, { ttlSeconds: 30 }));

    void test('TTL drops in-flight events too; a late ack of them is harmless', () =>
      withOutbox(factory, async ({ outbox }, clock) => {
        await appendN(outbox, 2);
        await outbox.claim(2);
        clock.advance(31_000);
        assert.equal((await outbox.sweep()).ttl, 2);
        assert.equal(outbox.stats().inFlight, 0);
        assert.equal(await outbox.ack([1, 2]), 0);
      }, { ttlSeconds: 30 }));

    void test('overflow drop-oldest: over the byte budget the oldest events go, counted as overflow', () =>
      withOutbox(factory, async ({ outbox }) => {
        const heard: DropCounts[] = [];
        outbox.onDrop((d) => heard.push(d));
        for (let i = 0; i < 10; i++) await outbox.append('t', sized(100)); // exactly the budget
        assert.equal(outbox.stats().bytes, 1000);
        assert.equal(heard.length, 0);
        await outbox.claim(2); // in flight does not protect an event from the budget
        const r = await outbox.append('t', sized(250));
        assert.equal(r.seq, 11);
        const s = outbox.stats();
        assert.ok(s.bytes <= 1000, `bytes ${s.bytes} over budget`);
        assert.equal(s.count, 8); // 3 oldest (300 bytes) made room for 250
        assert.deepEqual(s.dropped, { ttl: 0, overflow: 3 });
        assert.equal(s.inFlight, 0);
        assert.deepEqual(heard, [{ ttl: 0, overflow: 3, bytes: 300, byType: { '*': 3 } }]);
        assert.deepEqual(seqsOf(await outbox.claim(100)), range(4, 11));
        assert.equal(s.refused, 0);
      }, { maxBytes: 1000, maxEventBytes: 500, ...DROP_OLDEST }));

    void test('refuse (the default): over the budget an append fails with PERCH_ERR_STORE_FULL, nothing is dropped, no seq is used', () =>
      withOutbox(factory, async ({ outbox }) => {
        const heard: DropCounts[] = [];
        outbox.onDrop((d) => heard.push(d));
        for (let i = 0; i < 10; i++) await outbox.append('t', sized(100)); // exactly the budget
        await assert.rejects(outbox.append('t', sized(10)), { code: 'PERCH_ERR_STORE_FULL' });
        await assert.rejects(outbox.append('other', 1), { code: 'PERCH_ERR_STORE_FULL' });
        let s = outbox.stats();
        assert.equal(s.count, 10);
        assert.equal(s.bytes, 1000);
        assert.equal(s.lastSeq, 10);
        assert.equal(s.refused, 2);
        assert.deepEqual(s.dropped, { ttl: 0, overflow: 0 });
        assert.deepEqual(s.byType, { '*': { ttl: 0, overflow: 0, refused: 2 } });
        assert.equal(heard.length, 0);
        assert.deepEqual(seqsOf(await outbox.claim(100)), range(1, 10), 'every acknowledged event is still there');
        await outbox.ack([1]);
        assert.equal((await outbox.append('t', sized(100))).seq, 11, 'an ack makes room; seqs stay contiguous');
        s = outbox.stats();
        assert.equal(s.bytes, 1000);
      }, { maxBytes: 1000, maxEventBytes: 500 }));

    void test('mixed strategies: room for any event is made by dropping only drop-oldest types, oldest first', () =>
      withOutbox(factory, async ({ outbox }) => {
        const heard: DropCounts[] = [];
        outbox.onDrop((d) => heard.push(d));
        // seqs 1-3 alarm (refuse), 4-6 telemetry.temp, 7 alarm, 8-10 telemetry.rpm: 1000 bytes.
        const add = async (type: string, n: number) => {
          for (let i = 0; i < n; i++) await outbox.append(type, sized(100 - type.length + 1));
        };
        await add('alarm', 3);
        await add('telemetry.temp', 3);
        await add('alarm', 1);
        await add('telemetry.rpm', 3);
        assert.equal(outbox.stats().bytes, 1000);
        await outbox.claim(2); // alarms 1, 2 in flight: a drop must not forget their claims
        // A refuse-type event makes room by dropping the two oldest telemetry events (4, 5).
        assert.equal((await outbox.append('alarm', sized(196))).seq, 11);
        assert.deepEqual(heard, [{ ttl: 0, overflow: 2, bytes: 200, byType: { 'telemetry.*': 2 } }]);
        assert.equal(outbox.stats().inFlight, 2);
        assert.deepEqual(seqsOf(await outbox.claim(100)), [3, 6, 7, 8, 9, 10, 11]);
        await outbox.release(range(1, 11));
        // A telemetry event also pushes out the oldest telemetry (6), never an alarm.
        assert.equal((await outbox.append('telemetry.temp', sized(100 - 13))).seq, 12);
        assert.deepEqual(heard.at(-1)?.byType, { 'telemetry.*': 1 });
        // Fill what telemetry is left with alarms: 8, 9, 10, 12 go; then the budget is all alarms.
        for (let i = 0; i < 4; i++) await outbox.append('alarm', sized(96));
        assert.deepEqual(seqsOf(await outbox.claim(100)), [1, 2, 3, 7, 11, 13, 14, 15, 16]);
        await assert.rejects(outbox.append('alarm', sized(10)), { code: 'PERCH_ERR_STORE_FULL' });
        await assert.rejects(outbox.append('telemetry.temp', sized(10)), { code: 'PERCH_ERR_STORE_FULL' });
        const s = outbox.stats();
        assert.deepEqual(s.dropped, { ttl: 0, overflow: 7 });
        assert.equal(s.refused, 2);
        assert.deepEqual(s.byType, { 'telemetry.*': { ttl: 0, overflow: 7, refused: 1 }, '*': { ttl: 0, overflow: 0, refused: 1 } });
        assert.ok(s.bytes <= 1000);
        assert.equal(s.lastSeq, 16);
      }, { maxBytes: 1000, maxEventBytes: 500, overflowByType: { 'telemetry.*': 'drop-oldest' } }));

    void test('overflowByType: an exact type wins over its family, a longer family over a shorter one', () =>
      withOutbox(factory, async ({ outbox }) => {
        await appendSized(outbox, 'a.b.keep', 100); // exact: refuse
        await appendSized(outbox, 'a.b.c', 100); // a.b.*: refuse
        await appendSized(outbox, 'a.x', 100); // a.*: drop-oldest
        await appendSized(outbox, 'a.b.keep', 100);
        assert.equal(outbox.stats().count, 3, 'a.x made room');
        await assert.rejects(appendSized(outbox, 'a.y', 100), { code: 'PERCH_ERR_STORE_FULL' });
        assert.deepEqual(outbox.stats().byType, { 'a.*': { ttl: 0, overflow: 1, refused: 1 } });
      }, { maxBytes: 300, maxEventBytes: 300, overflow: 'drop-oldest', overflowByType: { 'a.*': 'drop-oldest', 'a.b.*': 'refuse', 'a.b.keep': 'refuse' } }));

    void test('appends of one tick: the ones that do not fit are refused alone, the others commit with contiguous seqs', () =>
      withOutbox(factory, async ({ outbox }) => {
        await appendSized(outbox, 't', 600);
        const settled = await Promise.allSettled([
          appendSized(outbox, 't', 200), // fits: 800
          appendSized(outbox, 't', 300), // would be 1100: refused
          appendSized(outbox, 't', 200), // fits: 1000
          appendSized(outbox, 't', 3),
        ]);
        assert.deepEqual(settled.map((r) => r.status), ['fulfilled', 'rejected', 'fulfilled', 'rejected']);
        assert.deepEqual(settled.flatMap((r) => (r.status === 'fulfilled' ? [r.value.seq] : [])), [2, 3]);
        for (const r of settled) if (r.status === 'rejected') assert.equal((r.reason as { code: string }).code, 'PERCH_ERR_STORE_FULL');
        assert.equal((await appendSized(outbox, 't', 3).catch((e: { code: string }) => e.code)), 'PERCH_ERR_STORE_FULL');
        await outbox.ack([1]);
        assert.equal((await appendSized(outbox, 't', 3)).seq, 4);
      }, { maxBytes: 1000, maxEventBytes: 1000 }));

    void test('strategies survive a restart (what may be dropped is read back from storage) and can be changed', () =>
      withOutbox(factory, async (h) => {
        for (let i = 0; i < 5; i++) await appendSized(h.outbox, 'keep', 100);
        for (let i = 0; i < 5; i++) await appendSized(h.outbox, 'tele', 100);
        let outbox = await h.reopen();
        await appendSized(outbox, 'keep', 100); // drops tele 6
        assert.deepEqual(outbox.stats().byType, { tele: { ttl: 0, overflow: 1, refused: 0 } });
        assert.equal((await outbox.claim(1))[0]?.seq, 1);
        outbox = await h.reopen();
        for (let i = 0; i < 4; i++) await appendSized(outbox, 'keep', 100); // drops tele 7-10
        await assert.rejects(appendSized(outbox, 'tele', 100), { code: 'PERCH_ERR_STORE_FULL' });
        // Made droppable while running: the oldest keep events go now.
        outbox.setLimits({ overflowByType: { tele: 'drop-oldest', keep: 'drop-oldest' } });
        assert.equal((await appendSized(outbox, 'tele', 100)).seq, 16);
        assert.deepEqual(seqsOf(await outbox.claim(1)), [2]);
        // And back: a lowered budget then drops only what may be dropped (the one tele event).
        outbox.setLimits({ overflowByType: { tele: 'drop-oldest' }, maxBytes: 500 });
        const d = await outbox.sweep();
        assert.deepEqual(d, { ttl: 0, overflow: 1, bytes: 100, byType: { tele: 1 } });
        assert.equal(outbox.stats().bytes, 900, 'over the budget: refuse-type events are never dropped');
        await assert.rejects(appendSized(outbox, 'tele', 100), { code: 'PERCH_ERR_STORE_FULL' });
      }, { maxBytes: 1000, maxEventBytes: 500, overflowByType: { tele: 'drop-oldest' } }));

    void test('a lowered budget is applied by the next sweep', () =>
      withOutbox(factory, async ({ outbox }) => {
        for (let i = 0; i < 10; i++) await outbox.append('t', sized(100));
        outbox.setLimits({ maxBytes: 450 });
        const d = await outbox.sweep();
        assert.deepEqual(d, { ttl: 0, overflow: 6, bytes: 600, byType: { '*': 6 } });
        assert.deepEqual(seqsOf(await outbox.claim(100)), [7, 8, 9, 10]);
        assert.equal(outbox.stats().dropped.overflow, 6);
      }, DROP_OLDEST));

    void test('stats: oldestAgeMs follows the oldest stored event and is 0 when empty', () =>
      withOutbox(factory, async ({ outbox }, clock) => {
        assert.deepEqual(outbox.stats().oldestAgeMs, 0);
        assert.equal(outbox.stats().count, 0);
        await outbox.append('a', 1);
        clock.advance(5000);
        await outbox.append('b', 2);
        clock.advance(1000);
        assert.equal(outbox.stats().oldestAgeMs, 6000);
        await outbox.ack([1]);
        assert.equal(outbox.stats().oldestAgeMs, 1000);
        await outbox.ack([2]);
        assert.equal(outbox.stats().oldestAgeMs, 0);
      }));

    void test('a throwing drop listener does not break the outbox or the other listeners', () =>
      withOutbox(factory, async ({ outbox }, clock) => {
        let heard = 0;
        outbox.onDrop(() => {
          throw new Error('listener bug');
        });
        const off = outbox.onDrop(() => heard++);
        await appendN(outbox, 1);
        clock.advance(31_000);
        await outbox.sweep();
        assert.equal(heard, 1);
        off();
        await appendN(outbox, 1);
        clock.advance(31_000);
        await outbox.sweep();
        assert.equal(heard, 1);
      }, { ttlSeconds: 30 }));
  });
}
