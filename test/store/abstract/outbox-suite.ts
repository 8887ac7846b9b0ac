// The abstract outbox suite (docs/design.md house style 5, like aedes-persistence's abstract.js): every
// Outbox implementation runs it through its own factory. It uses only the Outbox interface, a
// FakeClock it passes in, and reopen() for restarts.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { OutboxLimits } from '../../../runtime/store/config.js';
import type { DropCounts, Outbox } from '../../../runtime/store/outbox.js';
import { FakeClock } from '../../helpers/fake-clock.js';

export interface OutboxHarness {
  outbox: Outbox;
  /** Closes the outbox and opens it again on the same storage (a restart); returns the new one. */
  reopen(): Promise<Outbox>;
  /** Closes and removes the storage. */
  destroy(): Promise<void>;
}

export type OutboxFactory = (opts: { clock: FakeClock; limits: OutboxLimits }) => Promise<OutboxHarness>;

const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
// The product default strategy (refuse); the drop-oldest tests say so.
const LIMITS: OutboxLimits = { maxEventBytes: 4096, ttlSeconds: 3600, maxBytes: 1024 * 1024, overflow: 'refuse', overflowByType: {} };
const DROP_OLDEST: Partial<OutboxLimits> = { overflow: 'drop-oldest' };

async function withOutbox(
  factory: OutboxFactory,
  fn: (h: OutboxHarness, clock: FakeClock) => Promise<void>,
  limits: Partial<OutboxLimits> = {},
): Promise<void> {
  const clock = new FakeClock();
  const h = await factory({ clock, limits: { ...LIMITS, ...limits } });
  try {
    await fn(h, clock);
  } finally {
    await h.destroy();
  }
}

async function appendN(outbox: Outbox, n: number, type = 'test.event'): Promise<number[]> {
  const seqs: number[] = [];
  for (let i = 0; i < n; i++) seqs.push((await outbox.append(type, { i })).seq);
  return seqs;
}

const seqsOf = (events: ReadonlyArray<{ seq: number }>) => events.map((e) => e.seq);
const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

/** Payload of exactly `bytes` stored bytes with type 't' (1 byte): a JSON string of bytes - 3 chars. */
const sized = (bytes: number) => 'x'.repeat(bytes - 3);
/** Appends an event of exactly `bytes` stored bytes (type + payload JSON). */
const appendSized = (outbox: Outbox, type: string, bytes: number) => outbox.append(type, 'x'.repeat(bytes - 2 - type.length));

export function runOutboxSuite(name: string, factory: OutboxFactory): void {
  void describe(`Outbox: ${name}`, () => {
    void test('append resolves with a UUID v4 event id and a seq that rises by exactly one', () =>
      withOutbox(factory, async ({ outbox }) => {
        const a = await outbox.append('model.loaded', { model: 'vad', version: 1 });
        const b = await outbox.append('model.loaded', { model: 'ocr', version: 2 });
        const c = await outbox.append('custom', null);
        assert.deepEqual([a.seq, b.seq, c.seq], [1, 2, 3]);
        for (const r of [a, b, c]) assert.match(r.eventId, UUID_V4);
        assert.equal(new Set([a.eventId, b.eventId, c.eventId]).size, 3);
        const s = outbox.stats();
        assert.equal(s.count, 3);
        assert.equal(s.lastSeq, 3);
        const expectedBytes = ['model.loaded', 'model.loaded', 'custom'].reduce((n, t) => n + t.length, 0)
          + JSON.stringify({ model: 'vad', version: 1 }).length + JSON.stringify({ model: 'ocr', version: 2 }).length + 'null'.length;
        assert.equal(s.bytes, expectedBytes);
      }));

    void test('concurrent appends are group-committed: one transaction, distinct consecutive seqs in call order', () =>
      withOutbox(factory, async ({ outbox }) => {
        await outbox.append('warm', 0);
        const before = outbox.stats().commits;
        const results = await Promise.all(Array.from({ length: 500 }, (_, i) => outbox.append('burst', { i })));
        const commits = outbox.stats().commits - before;
        assert.ok(commits >= 1 && commits <= 2, `500 appends in one tick took ${commits} transactions`);
        assert.deepEqual(results.map((r) => r.seq), range(2, 501));
        assert.equal(new Set(results.map((r) => r.eventId)).size, 500);
        const claimed = await outbox.claim(1000);
        assert.deepEqual(seqsOf(claimed), range(1, 501));
        assert.deepEqual(claimed.slice(1).map((e) => (e.payload as { i: number }).i), range(0, 499));
      }));

    void test('a payload over maxEventBytes is refused with PERCH_ERR_EVENT_TOO_LARGE and uses no seq', () =>
      withOutbox(factory, async ({ outbox }) => {
        await assert.rejects(outbox.append('big', sized(4096 + 4)), { code: 'PERCH_ERR_EVENT_TOO_LARGE' });
        await outbox.append('ok', 'x'.repeat(4094)); // JSON "xxx…" is 4096 bytes: at the limit
        const again = await outbox.append('ok', 1);
        assert.equal(again.seq, 2);
        assert.equal(outbox.stats().count, 2);
      }, { maxEventBytes: 4096 }));

    void test('an empty type or an unserializable payload is refused and uses no seq', () =>
      withOutbox(factory, async ({ outbox }) => {
        await assert.rejects(outbox.append('', {}), { code: 'PERCH_ERR_INVALID_MESSAGE' });
        const cyclic: Record<string, unknown> = {};
        cyclic.self = cyclic;
        await assert.rejects(outbox.append('t', cyclic), { code: 'PERCH_ERR_INVALID_MESSAGE' });
        await assert.rejects(outbox.append('t', 10n), { code: 'PERCH_ERR_INVALID_MESSAGE' });
        assert.equal((await outbox.append('t', undefined)).seq, 1);
        const [e] = await outbox.claim(1);
        assert.equal(e?.payload, null);
      }));

    void test('claim returns the oldest unclaimed events in order; release puts them first again; ack deletes', () =>
      withOutbox(factory, async ({ outbox }, clock) => {
        await appendN(outbox, 10);
        const first = await outbox.claim(3);
        assert.deepEqual(seqsOf(first), [1, 2, 3]);
        assert.equal(first[0]?.type, 'test.event');
        assert.deepEqual(first[0]?.payload, { i: 0 });
        assert.equal(first[0]?.createdAt, clock.wallNow());
        assert.deepEqual(seqsOf(await outbox.claim(3)), [4, 5, 6]);
        assert.equal(outbox.stats().inFlight, 6);
        await outbox.release([2, 3]);
        assert.deepEqual(seqsOf(await outbox.claim(5)), [2, 3, 7, 8, 9]);
        assert.equal(await outbox.ack([1, 2, 3, 99]), 3); // 99 never existed: ignored
        assert.equal(outbox.stats().count, 7);
        assert.equal(outbox.stats().inFlight, 6); // 4..9
        await outbox.release([5]);
        assert.deepEqual(seqsOf(await outbox.claim(10)), [5, 10]);
        assert.deepEqual(seqsOf(await outbox.claim(10)), []);
        assert.equal(await outbox.ack(range(4, 10)), 7);
        assert.deepEqual(outbox.stats().count, 0);
        assert.equal(outbox.stats().bytes, 0);
        assert.equal(outbox.stats().inFlight, 0);
      }));

    void test('readAfter reads stored events after a seq in order, claimed or not, and claims nothing', () =>
      withOutbox(factory, async ({ outbox }) => {
        await appendN(outbox, 6);
        assert.deepEqual(seqsOf(await outbox.claim(2)), [1, 2]);
        assert.deepEqual(seqsOf(await outbox.readAfter(0, 4)), [1, 2, 3, 4]);
        assert.deepEqual(seqsOf(await outbox.readAfter(4, 10)), [5, 6]);
        assert.equal((await outbox.readAfter(2, 1))[0]?.type, 'test.event');
        assert.equal(outbox.stats().inFlight, 2);
        assert.deepEqual(seqsOf(await outbox.claim(10)), [3, 4, 5, 6]);
        assert.equal(await outbox.ack([1, 2, 3]), 3);
        assert.deepEqual(seqsOf(await outbox.readAfter(0, 10)), [4, 5, 6]); // acked ones are gone
        assert.deepEqual(seqsOf(await outbox.readAfter(6, 10)), []);
      }));

    void test('markSent: claimed events count as sent until acked or released; unclaimed ones are ignored', () =>
      withOutbox(factory, async ({ outbox }) => {
        await appendN(outbox, 6);
        await outbox.claim(4);
        outbox.markSent([1, 2, 3, 5]); // 5 is not claimed: ignored
        assert.equal(outbox.stats().sent, 3);
        assert.equal(outbox.stats().inFlight, 4);
        await outbox.release([2]); // not sent any more: claimable again, first in line
        assert.equal(outbox.stats().sent, 2);
        assert.deepEqual(seqsOf(await outbox.claim(1)), [2]);
        await outbox.ack([1, 3]);
        assert.equal(outbox.stats().sent, 0);
        assert.equal(outbox.stats().count, 4);
      }));

    void test('acks made in the same tick each resolve with their own count, and are durable', () =>
      withOutbox(factory, async (h) => {
        await appendN(h.outbox, 40);
        await h.outbox.claim(40);
        // One ack per event, all at once (an uploader acking each PUBACK), plus a duplicate.
        const counts = await Promise.all([...range(1, 30).map((seq) => h.outbox.ack([seq])), h.outbox.ack([5, 31])]);
        assert.deepEqual(counts, [...range(1, 30).map(() => 1), 1]); // 5 went with its own ack
        assert.equal(h.outbox.stats().count, 9);
        assert.equal(h.outbox.stats().inFlight, 9);
        const reopened = await h.reopen();
        assert.deepEqual(seqsOf(await reopened.claim(40)), range(32, 40));
      }));

    void test('claim, release and ack in any order match a simple model (oldest unclaimed first)', () =>
      withOutbox(factory, async ({ outbox }) => {
        // A seeded walk, not timing: the same operations every run. Releases below the claim
        // position and runs of in-flight events longer than one read are both exercised.
        let seed = 7;
        const rand = (n: number) => {
          seed = (seed * 1_103_515_245 + 12_345) % 2_147_483_648;
          return seed % n;
        };
        const stored = new Set<number>();
        const inFlight = new Set<number>();
        let next = 1;
        for (let step = 0; step < 400; step++) {
          const op = rand(10);
          if (op < 3) {
            const n = 1 + rand(40);
            await Promise.all(Array.from({ length: n }, () => outbox.append('m', step)));
            for (let i = 0; i < n; i++) stored.add(next++);
          } else if (op < 6) {
            const limit = 1 + rand(50);
            const expected = [...stored].filter((s) => !inFlight.has(s)).sort((x, y) => x - y).slice(0, limit);
            const got = seqsOf(await outbox.claim(limit));
            assert.deepEqual(got, expected, `step ${step}: claim(${limit})`);
            for (const s of got) inFlight.add(s);
          } else if (op < 8) {
            const some = [...inFlight].filter(() => rand(3) === 0);
            await outbox.release(some);
            for (const s of some) inFlight.delete(s);
          } else {
            const some = [...inFlight].filter(() => rand(2) === 0);
            if (rand(4) === 0) some.push(next + 5, 0); // unknown seqs are ignored
            assert.equal(await outbox.ack(some), some.filter((s) => stored.has(s)).length);
            for (const s of some) {
              stored.delete(s);
              inFlight.delete(s);
            }
          }
          assert.equal(outbox.stats().count, stored.size);
          assert.equal(outbox.stats().inFlight, inFlight.size);
        }
      }, { maxBytes: 64 * 1024 * 1024 }));

    void test('claim respects maxBytes but always returns at least one event', () =>
      withOutbox(factory, async ({ outbox }) => {
        for (let i = 0; i < 5; i++) await outbox.append('t', sized(100));
        assert.deepEqual(seqsOf(await outbox.claim(10, 250)), [1, 2]);
        assert.deepEqual(seqsOf(await outbox.claim(10, 50)), [3]); // larger than maxBytes alone: still sent
        assert.deepEqual(seqsOf(await outbox.claim(0)), []);
      }));

    void test('a restart keeps the seq counter and the unacked events, and forgets claims (at-least-once)', () =>
      withOutbox(factory, async (h) => {
        await appendN(h.outbox, 5);
        assert.deepEqual(seqsOf(await h.outbox.claim(2)), [1, 2]);
        await h.outbox.ack([1]);
        const bytesBefore = h.outbox.stats().bytes;
        const reopened = await h.reopen();
        const s = reopened.stats();
        assert.equal(s.count, 4);
        assert.equal(s.bytes, bytesBefore);
        assert.equal(s.inFlight, 0);
        assert.equal(s.lastSeq, 5);
        assert.deepEqual(seqsOf(await reopened.claim(10)), [2, 3, 4, 5]);
        assert.equal((await reopened.append('after', {})).seq, 6);
      }));

    void test('seq never repeats, even after every event was acked and across restarts', () =>
      withOutbox(factory, async (h) => {
        await appendN(h.outbox, 3);
        await h.outbox.ack([1, 2, 3]);
        assert.equal(h.outbox.stats().count, 0);
        let outbox = await h.reopen();
        assert.equal((await outbox.append('t', {})).seq, 4);
        await outbox.ack([4]);
        outbox = await h.reopen();
        assert.equal((await outbox.append('t', {})).seq, 5);
      }));

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

    void test('close commits pending appends, then refuses new ones', () =>
      withOutbox(factory, async (h) => {
        const pending = Promise.all([h.outbox.append('a', 1), h.outbox.append('b', 2)]);
        await h.outbox.close();
        assert.deepEqual((await pending).map((r) => r.seq), [1, 2]);
        await assert.rejects(h.outbox.append('c', 3), { code: 'PERCH_ERR_STORE_UNAVAILABLE' });
        const reopened = await h.reopen();
        assert.equal(reopened.stats().count, 2);
      }));
  });
}
