// The abstract outbox suite (docs/design.md house style 5, like aedes-persistence's abstract.js): every
// Outbox implementation runs it through its own factory. It uses only the Outbox interface, a
// FakeClock it passes in, and reopen() for restarts. Drops, refusals and stats are in
// outbox-limits-suite.ts, run from here.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { MAX_EVENT_PAYLOAD_DEPTH } from '../../../runtime/base/json-depth.js';
import { appendN, range, seqsOf, sized, UUID_V4, withOutbox, type OutboxFactory } from './outbox-harness.js';
import { runOutboxLimitsSuite } from './outbox-limits-suite.js';

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

    void test('an empty type, an unserializable payload or one nested too deep is refused and uses no seq', () =>
      withOutbox(factory, async ({ outbox }) => {
        await assert.rejects(outbox.append('', {}), { code: 'PERCH_ERR_INVALID_MESSAGE' });
        const cyclic: Record<string, unknown> = {};
        cyclic.self = cyclic;
        await assert.rejects(outbox.append('t', cyclic), { code: 'PERCH_ERR_INVALID_MESSAGE' });
        await assert.rejects(outbox.append('t', 10n), { code: 'PERCH_ERR_INVALID_MESSAGE' });
        // Deeper than MAX_EVENT_PAYLOAD_DEPTH: its batch would be one the fleet refuses (runtime/base/json-depth.ts).
        const nest = (levels: number): unknown => (levels === 0 ? 1 : [nest(levels - 1)]);
        await assert.rejects(outbox.append('t', { a: nest(MAX_EVENT_PAYLOAD_DEPTH) }), { code: 'PERCH_ERR_INVALID_MESSAGE', message: /more than 64 levels deep/ });
        assert.equal((await outbox.append('t', nest(MAX_EVENT_PAYLOAD_DEPTH))).seq, 1, 'at the bound: taken');
        assert.equal((await outbox.append('t', undefined)).seq, 2);
        const [, e] = await outbox.claim(2);
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
  runOutboxLimitsSuite(name, factory);
}
