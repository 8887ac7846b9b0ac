// The contract of a fleet store (cloud-sync/fleet/store/fleet-store.ts), run against every
// implementation: each test gets a fresh, empty location and may open it more than once (two
// serve workers on one store).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { FleetStore } from '../../cloud-sync/fleet/store/fleet-store.js';
import type { EventMessage } from '../../cloud-sync/protocol/schemas.js';
import { rolloutStoreSuite } from './store-suite-rollouts.js';

export interface StoreUnderTest {
  /** A fresh, empty store location; `open` connects to it (again and again). */
  fresh(): Promise<{ open(): Promise<FleetStore> }>;
}

function events(first: number, n: number): EventMessage[] {
  return Array.from({ length: n }, (_, i) => ({ id: `e-${first + i}`, seq: first + i, ts: 1_700_000_000_000 + i, type: 'vad.segment', payload: { i: first + i } }));
}

async function withStore<T>(s: StoreUnderTest, fn: (db: FleetStore, open: () => Promise<FleetStore>) => Promise<T>): Promise<T> {
  const where = await s.fresh();
  const db = await where.open();
  try {
    return await fn(db, () => where.open());
  } finally {
    await db.close();
  }
}

export function fleetStoreSuite(s: StoreUnderTest): void {
  rolloutStoreSuite((fn) => withStore(s, fn));
  test('events: stored once per (device, seq), read back in seq order after a seq', () =>
    withStore(s, async (db) => {
      assert.deepEqual(await db.storeEvents('pi-1', events(1, 5), 10), { stored: 5, duplicates: 0 });
      assert.deepEqual(await db.storeEvents('pi-1', events(4, 4), 11), { stored: 2, duplicates: 2 });
      assert.deepEqual(await db.storeEvents('pi-2', events(1, 2), 12), { stored: 2, duplicates: 0 });
      const got = await db.events('pi-1', 2);
      assert.deepEqual(got.map((e) => e.seq), [3, 4, 5, 6, 7]);
      assert.deepEqual(got[0], { deviceId: 'pi-1', seq: 3, id: 'e-3', ts: 1_700_000_000_002, type: 'vad.segment', payload: { i: 3 }, receivedAt: 10 });
      // The first copy wins: seq 4 keeps its first receivedAt.
      assert.equal(got[1]?.receivedAt, 10);
      assert.equal(got[3]?.receivedAt, 11);
      assert.deepEqual((await db.events('pi-1', 0, 2)).map((e) => e.seq), [1, 2]);
      assert.deepEqual(await db.events('nobody', 0), []);
    }));

  test('events: ISO timestamps, null payloads and the largest seq survive the round trip', () =>
    withStore(s, async (db) => {
      const big = Number.MAX_SAFE_INTEGER;
      await db.storeEvents('pi-1', [{ id: 'a', seq: big, ts: '2026-11-29T08:00:00.000Z', type: 't', payload: null }], 1);
      assert.deepEqual(await db.events('pi-1', big - 1), [{ deviceId: 'pi-1', seq: big, id: 'a', ts: '2026-11-29T08:00:00.000Z', type: 't', payload: null, receivedAt: 1 }]);
    }));

  test('held seqs: first, highest contiguous, gaps and the missing count', () =>
    withStore(s, async (db) => {
      assert.deepEqual(await db.heldSeqs('pi-1'), { firstSeq: null, contiguousSeq: null, gaps: [], missing: 0 });
      await db.storeEvents('pi-1', [...events(3, 3), ...events(8, 1), ...events(12, 2)], 1);
      assert.deepEqual(await db.heldSeqs('pi-1'), { firstSeq: 3, contiguousSeq: 5, gaps: [[6, 7], [9, 11]], missing: 5 });
      assert.deepEqual((await db.heldSeqs('pi-1', 1)).gaps, [[6, 7]]);
    }));

  test('devices: status and reported upserted, counts of events, ordered by id', () =>
    withStore(s, async (db) => {
      await db.recordStatus('pi-b', { online: true }, JSON.stringify({ online: true, v: 1 }), 1);
      await db.recordReported('pi-a', JSON.stringify({ desiredVersion: 3 }), 2);
      await db.storeEvents('pi-a', events(1, 4), 3);
      await db.recordStatus('pi-b', { online: false }, JSON.stringify({ online: false }), 4);
      await db.recordStatus('pi-c', null, null, 5);
      assert.deepEqual(await db.device('pi-a'), { deviceId: 'pi-a', online: null, status: null, reported: { desiredVersion: 3 }, eventCount: 4, lastSeq: 4 });
      assert.deepEqual(await db.device('pi-b'), { deviceId: 'pi-b', online: false, status: { online: false }, reported: null, eventCount: 0, lastSeq: null });
      assert.equal(await db.device('ghost'), undefined);
      assert.deepEqual((await db.devices()).map((d) => d.deviceId), ['pi-a', 'pi-b', 'pi-c']);
      // The rollout controller's read: just the devices asked for, unknown ones left out.
      const views = await db.deviceViews(['pi-b', 'pi-a', 'ghost']);
      assert.deepEqual([...views.entries()].sort(), [['pi-a', { online: null, reported: { desiredVersion: 3 } }], ['pi-b', { online: false, reported: null }]]);
      assert.equal((await db.deviceViews([])).size, 0);
    }));

  test('desired: the version only rises, and concurrent records from two openers never share one', () =>
    withStore(s, async (db, open) => {
      assert.equal(await db.desired('pi-1'), undefined);
      const doc = { version: 1, models: {}, config: {} };
      assert.equal((await db.recordDesired('pi-1', doc, 1)).version, 1);
      // Someone else took 1 meanwhile: raised above the stored version.
      assert.equal((await db.recordDesired('pi-1', doc, 2)).version, 2);
      assert.equal((await db.recordDesired('pi-1', { ...doc, version: 9 }, 3)).version, 9);
      assert.deepEqual(await db.desired('pi-1'), { version: 9, models: {}, config: {} });
      const other = await open();
      try {
        const claims = await Promise.all(Array.from({ length: 10 }, (_, i) => (i % 2 ? db : other).recordDesired('pi-1', doc, 4)));
        assert.deepEqual(claims.map((c) => c.version).sort((a, b) => a - b), [10, 11, 12, 13, 14, 15, 16, 17, 18, 19]);
      } finally {
        await other.close();
      }
    }));

  test('desired: many devices recorded in one call, each raised like recordDesired, concurrent batches never share a version', () =>
    withStore(s, async (db, open) => {
      const doc = (v: number) => ({ version: v, models: {}, config: {} });
      await db.recordDesired('pi-b', doc(4), 1);
      const got = await db.recordDesiredMany([{ deviceId: 'pi-c', doc: doc(1) }, { deviceId: 'pi-b', doc: doc(1) }, { deviceId: 'pi-a', doc: doc(7) }], 2);
      assert.deepEqual(got.map((d) => d.version), [1, 5, 7]);
      assert.equal((await db.desired('pi-b'))?.version, 5);
      assert.deepEqual(await db.recordDesiredMany([], 3), []);
      const other = await open();
      try {
        const batch = ['pi-a', 'pi-b', 'pi-c'].map((deviceId) => ({ deviceId, doc: doc(1) }));
        const [x, y] = await Promise.all([db.recordDesiredMany(batch, 4), other.recordDesiredMany([...batch].reverse(), 4)]);
        for (const [i, id] of ['pi-a', 'pi-b', 'pi-c'].entries()) {
          const mine = [x?.[i]?.version, y?.[2 - i]?.version].sort();
          assert.notEqual(mine[0], mine[1], id);
        }
      } finally {
        await other.close();
      }
    }));

  test('two openers storing the same batches: every event stored exactly once', () =>
    withStore(s, async (db, open) => {
      const other = await open();
      try {
        const results = await Promise.all(Array.from({ length: 20 }, (_, i) => (i % 2 ? db : other).storeEvents('pi-1', events(1 + 5 * Math.floor(i / 2), 10), i)));
        const stored = results.reduce((n, r) => n + r.stored, 0);
        assert.equal(stored, 55);
        assert.deepEqual((await other.events('pi-1', 0)).map((e) => e.seq), Array.from({ length: 55 }, (_, i) => i + 1));
      } finally {
        await other.close();
      }
    }));

  test('ingest: a group of batches, statuses and reported states in one transaction, applied in order', () =>
    withStore(s, async (db) => {
      await db.storeEvents('pi-1', events(1, 2), 1);
      const stored = await db.ingest([
        { kind: 'events', deviceId: 'pi-1', events: events(2, 3) }, // seq 2 already held
        { kind: 'status', deviceId: 'pi-2', status: { online: true }, json: JSON.stringify({ online: true }) },
        { kind: 'events', deviceId: 'pi-2', events: events(1, 2) },
        { kind: 'events', deviceId: 'pi-2', events: events(2, 2) }, // a re-send within the group: seq 2 credited once
        { kind: 'reported', deviceId: 'pi-2', json: '{"desiredVersion":1}' },
        { kind: 'status', deviceId: 'pi-2', status: { online: false }, json: JSON.stringify({ online: false }) }, // the later one wins
        { kind: 'reported', deviceId: 'pi-3', json: '{"desiredVersion":2}' },
      ], 7);
      assert.deepEqual(stored, [2, 0, 2, 1, 0, 0, 0]);
      assert.deepEqual((await db.events('pi-1', 0)).map((e) => [e.seq, e.receivedAt]), [[1, 1], [2, 1], [3, 7], [4, 7]]);
      assert.deepEqual((await db.events('pi-2', 0)).map((e) => e.seq), [1, 2, 3]);
      const pi2 = await db.device('pi-2');
      assert.equal(pi2?.online, false);
      assert.deepEqual(pi2?.reported, { desiredVersion: 1 });
      assert.deepEqual((await db.device('pi-3'))?.reported, { desiredVersion: 2 });
      assert.deepEqual(await db.ingest([], 8), []);
    }));

  test('ingest: a group that fails stores none of its writes', () =>
    withStore(s, async (db) => {
      // A row the database refuses (a NULL type, which the event schema never lets through) fails the whole group.
      const bad = [{ id: 'x', seq: 9, ts: 1, type: null as unknown as string, payload: null }];
      await assert.rejects(db.ingest([
        { kind: 'status', deviceId: 'pi-9', status: { online: true }, json: '{"online":true}' },
        { kind: 'events', deviceId: 'pi-9', events: events(1, 3) },
        { kind: 'events', deviceId: 'pi-9', events: bad },
      ], 1));
      assert.equal(await db.device('pi-9'), undefined);
      assert.deepEqual(await db.events('pi-9', 0), []);
    }));

  test('two openers ingesting overlapping groups: every event stored exactly once', () =>
    withStore(s, async (db, open) => {
      const other = await open();
      try {
        const group = (i: number) => [0, 1, 2].map((d) => ({ kind: 'events' as const, deviceId: `pi-${(d + i) % 3}`, events: events(1 + 5 * Math.floor(i / 2), 10) }));
        const results = await Promise.all(Array.from({ length: 20 }, (_, i) => (i % 2 ? db : other).ingest(group(i), i)));
        assert.equal(results.flat().reduce((n, x) => n + x, 0), 3 * 55);
        for (const d of [0, 1, 2]) assert.deepEqual((await other.events(`pi-${d}`, 0)).map((e) => e.seq), Array.from({ length: 55 }, (_, i) => i + 1));
      } finally {
        await other.close();
      }
    }));
}
