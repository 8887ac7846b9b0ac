// A database found corrupt at start-up is salvaged before it is moved aside (runtime/store/salvage.ts,
// docs/store.md "A corrupt file"): the outbox events on intact pages (and in the -wal) come back
// in the fresh file with their seqs and ids, the seq counter goes on above every seq the file used,
// device state comes back, and the damaged file is kept as it was. Real SQLite files, damaged by
// overwriting pages the way test/store/database.test.ts does.
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import type { Clock } from '../../runtime/base/clock.js';
import type { StoreIncident } from '../../runtime/store/database.js';
import type { OutboxEvent } from '../../runtime/store/outbox.js';
import { salvageDatabase } from '../../runtime/store/salvage.js';
import { defaultStoreConfig } from '../../runtime/store/config.js';
import { openStore, type PerchStore } from '../../runtime/store/store.js';
import { FakeClock } from '../helpers/fake-clock.js';
import { leafRowids, overwritePages, PAGE, pagesOf } from './helpers/damage.js';
import { makeTempDir, type TempDir } from './helpers/temp-dir.js';

interface Written {
  seq: number;
  eventId: string;
  payload: string;
}

/** Appends `n` events (payload `{i, pad}`) and returns what each was acknowledged with. */
async function appendEvents(store: PerchStore, from: number, n: number, pad = 120): Promise<Written[]> {
  const out = await Promise.all(
    Array.from({ length: n }, async (_, k) => {
      const payload = { i: from + k, pad: 'p'.repeat(pad) };
      const r = await store.outbox.append('reading', payload);
      return { ...r, payload: JSON.stringify(payload) };
    }),
  );
  return out;
}

async function allEvents(store: PerchStore): Promise<OutboxEvent[]> {
  const out: OutboxEvent[] = [];
  for (;;) {
    const page = await store.outbox.readAfter(out.at(-1)?.seq ?? 0, 1000);
    if (page.length === 0) return out;
    out.push(...page);
  }
}

function corruptIncident(store: PerchStore): StoreIncident {
  assert.equal(store.incidents.length, 1, JSON.stringify(store.incidents));
  const incident = store.incidents[0] as StoreIncident;
  assert.equal(incident.kind, 'corrupt');
  assert.equal(incident.code, 'PERCH_ERR_STORE_CORRUPT');
  return incident;
}

/** Every event in `store` is the one written with its seq: same id, same payload. */
function assertSame(events: OutboxEvent[], written: Map<number, Written>): void {
  for (const e of events) {
    const w = written.get(e.seq);
    assert.ok(w, `seq ${e.seq} was never written`);
    assert.equal(e.eventId, w.eventId, `seq ${e.seq} id`);
    assert.equal(e.payloadJson, w.payload, `seq ${e.seq} payload`);
    assert.equal(e.type, 'reading');
    assert.equal(e.bytes, Buffer.byteLength('reading') + Buffer.byteLength(w.payload));
  }
  const seqs = events.map((e) => e.seq);
  assert.deepEqual(seqs, [...seqs].sort((a, b) => a - b), 'in seq order');
}

async function withTemp(fn: (tmp: TempDir) => Promise<void>): Promise<void> {
  const tmp = await makeTempDir('perch-salvage-');
  try {
    await fn(tmp);
  } finally {
    await tmp.remove();
  }
}

void describe('salvage of a corrupt database', () => {
  void test('a page of the outbox overwritten: the events on intact pages and in the -wal come back in order with their ids; the counter goes on', async () => {
    await withTemp(async (tmp) => {
      const live = tmp.join('live');
      const first = openStore({ dataDir: live });
      const written = new Map<number, Written>();
      for (const w of await appendEvents(first, 0, 2000)) written.set(w.seq, w);
      first.state.set('config.live', { server: { port: 1 } });
      await first.outbox.ack([1, 2, 3]); // acked: gone, and meta holds the counter
      for (const s of [1, 2, 3]) written.delete(s);
      first.checkpoint();
      // These stay in the -wal only: acknowledged, never checkpointed (the state at a power cut).
      for (const w of await appendEvents(first, 2000, 300)) written.set(w.seq, w);
      // A copy of the files as a crash would leave them (the store still open, so no checkpoint at close).
      const dataDir = tmp.join('data');
      mkdirSync(dataDir);
      copyFileSync(join(live, 'perch.db'), join(dataDir, 'perch.db'));
      copyFileSync(join(live, 'perch.db-wal'), join(dataDir, 'perch.db-wal'));
      await first.close();

      const file = join(dataDir, 'perch.db');
      const leaves = pagesOf(file, 'outbox', 'leaf');
      const image = readFileSync(file);
      // A leaf in the middle: its rows came before the checkpoint, so the -wal does not hold the page.
      const victim = leaves.find((p) => leafRowids(image, p).includes(1000));
      assert.ok(victim !== undefined);
      const onVictim = leafRowids(image, victim);
      overwritePages(file, [victim]);
      const damaged = readFileSync(file);

      const clock = new FakeClock(1_800_000_000_000);
      const store = openStore({ dataDir, clock });
      try {
        const incident = corruptIncident(store);
        const events = await allEvents(store);
        const expected = [...written.keys()].filter((s) => !onVictim.includes(s)).sort((a, b) => a - b);
        assert.deepEqual(events.map((e) => e.seq), expected);
        assertSame(events, written);
        assert.ok(events.some((e) => e.seq > 2000), 'the events only in the -wal are there');
        assert.equal(incident.salvaged, expected.length);
        assert.equal(incident.lost, onVictim.length);
        assert.equal(incident.lostExact, true);
        assert.equal(incident.stateKeys, 1);
        assert.equal(incident.counter, 'read');
        assert.deepEqual(store.state.get('config.live'), { server: { port: 1 } });
        // New events go on above every seq the damaged file used: the fleet must not take one for a duplicate.
        assert.equal(store.outbox.stats().lastSeq, 2300);
        assert.equal((await store.outbox.append('after', 1)).seq, 2301);
        assert.equal(store.outbox.stats().count, expected.length + 1);
        assert.equal(store.integrityCheck(), 'ok');
        // The damaged file is kept as it was, and nothing of the salvage is left over.
        assert.ok(incident.movedTo);
        assert.deepEqual(readFileSync(incident.movedTo), damaged);
        assert.deepEqual(readdirSync(dataDir).filter((f) => f.includes('salvage')), []);
        assert.match(incident.message, /moved to .* \d+ outbox events \(\d+ lost\) and 1 state documents were salvaged/);
      } finally {
        await store.close();
      }
    });
  });

  void test("the outbox's last page overwritten: the counter is read from meta and the index, so new seqs are not the lost ones", async () => {
    await withTemp(async (tmp) => {
      const first = openStore({ dataDir: tmp.path });
      const written = new Map<number, Written>();
      for (const w of await appendEvents(first, 0, 1500)) written.set(w.seq, w);
      await first.close();
      const file = tmp.join('perch.db');
      const leaves = pagesOf(file, 'outbox', 'leaf');
      const image = readFileSync(file);
      const last = leaves.find((p) => leafRowids(image, p).includes(1500));
      assert.ok(last !== undefined);
      const lostSeqs = leafRowids(image, last);
      overwritePages(file, [last]);

      const store = openStore({ dataDir: tmp.path });
      try {
        const incident = corruptIncident(store);
        const events = await allEvents(store);
        assert.equal(events.length, 1500 - lostSeqs.length);
        assert.ok(events.every((e) => e.seq < Math.min(...lostSeqs)));
        assertSame(events, written);
        assert.equal(incident.lost, lostSeqs.length);
        assert.equal(incident.counter, 'read');
        // 1500 was on the lost page: the fleet may hold it, so the next event is 1501, not max(readable) + 1.
        assert.equal((await store.outbox.append('after', 1)).seq, 1501);
      } finally {
        await store.close();
      }
    });
  });

  void test("an event's overflow page overwritten: that event is lost, the rows beside it on its page are not", async () => {
    await withTemp(async (tmp) => {
      const first = openStore({ dataDir: tmp.path });
      const written = new Map<number, Written>();
      for (const w of await appendEvents(first, 0, 40)) written.set(w.seq, w);
      const big = (await appendEvents(first, 40, 1, 10_000))[0] as Written; // spills to overflow pages
      written.set(big.seq, big);
      for (const w of await appendEvents(first, 41, 40)) written.set(w.seq, w);
      await first.close();
      const file = tmp.join('perch.db');
      const overflow = pagesOf(file, 'outbox', 'overflow');
      assert.ok(overflow.length >= 2);
      overwritePages(file, [overflow[0] as number]); // its next-page pointer now points past the file

      const store = openStore({ dataDir: tmp.path });
      try {
        const incident = corruptIncident(store);
        const events = await allEvents(store);
        assert.deepEqual(events.map((e) => e.seq), [...written.keys()].filter((s) => s !== big.seq));
        assertSame(events, written);
        assert.equal(incident.salvaged, 80);
        assert.equal(incident.lost, 1);
        assert.equal((await store.outbox.append('after', 1)).seq, 82);
      } finally {
        await store.close();
      }
    });
  });

  void test('meta and both b-trees of the outbox damaged at their ends: the counter is estimated past the file and the clock', async () => {
    await withTemp(async (tmp) => {
      const first = openStore({ dataDir: tmp.path });
      await appendEvents(first, 0, 600);
      await first.close();
      const file = tmp.join('perch.db');
      const pages = [...pagesOf(file, 'outbox', 'leaf').slice(-1), ...pagesOf(file, 'outbox_created_at', 'leaf').slice(-1), ...pagesOf(file, 'meta', 'leaf')];
      overwritePages(file, pages);

      const clock = new FakeClock(1_800_000_000_000);
      const store = openStore({ dataDir: tmp.path, clock });
      try {
        const incident = corruptIncident(store);
        assert.equal(incident.counter, 'estimated');
        assert.equal(incident.lostExact, false);
        assert.ok((incident.salvaged ?? 0) > 0);
        assert.equal((await store.outbox.append('after', 1)).seq, 1_800_000_000_001);
      } finally {
        await store.close();
      }
    });
  });

  void test('bounded: a salvage that reaches store.salvageTimeoutMs stops, start-up goes on, the rest stays in the copy, device state still comes', async () => {
    await withTemp(async (tmp) => {
      const first = openStore({ dataDir: tmp.path });
      await appendEvents(first, 0, 3000);
      first.state.set('config.live', { store: { checkOnOpen: 'quick' } });
      await first.close();
      const file = tmp.join('perch.db');
      const leaves = pagesOf(file, 'outbox', 'leaf');
      overwritePages(file, [leaves[Math.floor(leaves.length / 2)] as number]);

      // Every reading of the clock is a millisecond later: the budget is 500 readings, whatever the machine's speed.
      const wall = new FakeClock(1_800_000_000_000);
      let mono = 0;
      const clock: Clock = { now: () => mono++, wallNow: () => wall.wallNow(), setTimeout: wall.setTimeout.bind(wall), clearTimeout: wall.clearTimeout.bind(wall) };
      const store = openStore({ dataDir: tmp.path, clock, config: { ...defaultStoreConfig(), salvageTimeoutMs: 500 } });
      try {
        const incident = corruptIncident(store);
        assert.equal(incident.timedOut, true);
        assert.ok((incident.salvaged ?? 0) > 0 && (incident.salvaged ?? 0) < 1000, String(incident.salvaged));
        assert.equal(store.outbox.stats().count, incident.salvaged);
        assert.equal(incident.counter, 'read');
        assert.equal((await store.outbox.append('after', 1)).seq, 3001);
        assert.match(incident.message, /or more/);
        // Device state has a grace past the outbox's deadline: the live config is not lost to a long outbox.
        assert.deepEqual(store.state.get('config.live'), { store: { checkOnOpen: 'quick' } });
      } finally {
        await store.close();
      }
    });
  });

  void test('a crash during the salvage: an unfinished one is done again, a finished one not yet renamed becomes the database', async () => {
    await withTemp(async (tmp) => {
      const first = openStore({ dataDir: tmp.path });
      await appendEvents(first, 0, 500);
      await first.close();
      const file = tmp.join('perch.db');
      overwritePages(file, pagesOf(file, 'outbox', 'leaf').slice(2, 3));
      const damaged = readFileSync(file);

      // Killed mid-copy: a partial file beside the damaged one, which is still in place.
      writeFileSync(tmp.join('perch.db.salvaged'), damaged.subarray(0, 3 * PAGE));
      writeFileSync(tmp.join('perch.db.salvaged-journal'), 'hot journal of the unfinished copy');
      let store = openStore({ dataDir: tmp.path });
      const again = corruptIncident(store);
      assert.ok((again.salvaged ?? 0) > 400);
      const first1 = (await allEvents(store)).map((e) => e.seq);
      await store.close();
      assert.ok(!existsSync(tmp.join('perch.db.salvaged')) && !existsSync(tmp.join('perch.db.salvaged-journal')));

      // Killed after the damaged file was moved aside, before the finished copy was renamed.
      const other = tmp.join('other');
      mkdirSync(other);
      writeFileSync(join(other, 'perch.db'), damaged);
      writeFileSync(join(other, 'perch.db.salvaged'), '');
      const r = salvageDatabase(join(other, 'perch.db'), join(other, 'perch.db.salvaged'), { clock: new FakeClock(), timeoutMs: 60_000, maxPayloadBytes: 1 << 20 });
      assert.equal(r.salvaged, first1.length);
      renameSync(join(other, 'perch.db'), join(other, 'perch.db.corrupt-1')); // the move aside
      store = openStore({ dataDir: other });
      try {
        assert.deepEqual(store.incidents, []);
        assert.deepEqual((await allEvents(store)).map((e) => e.seq), first1);
        assert.equal((await store.outbox.append('after', 1)).seq, 501);
      } finally {
        await store.close();
      }
    });
  });

  void test('a file that is not a database at all: nothing to salvage, a fresh database whose seqs start past the clock', async () => {
    await withTemp(async (tmp) => {
      writeFileSync(tmp.join('perch.db'), Buffer.alloc(3 * PAGE, 0x5a));
      const clock = new FakeClock(1_800_000_000_000);
      const store = openStore({ dataDir: tmp.path, clock });
      try {
        const incident = corruptIncident(store);
        assert.equal(incident.salvaged, 0);
        assert.equal(incident.counter, 'estimated');
        assert.equal(store.outbox.stats().count, 0);
        assert.equal((await store.outbox.append('after', 1)).seq, 1_800_000_000_001);
        assert.equal(store.integrityCheck(), 'ok');
      } finally {
        await store.close();
      }
    });
  });

  void test('store.salvageTimeoutMs 0 moves the file aside unread; its seqs are still not used again', async () => {
    await withTemp(async (tmp) => {
      const first = openStore({ dataDir: tmp.path });
      await appendEvents(first, 0, 300);
      await first.close();
      const file = tmp.join('perch.db');
      overwritePages(file, pagesOf(file, 'outbox', 'leaf').slice(1, 2));
      const clock = new FakeClock(1_800_000_000_000);
      const store = openStore({ dataDir: tmp.path, clock, config: { ...defaultStoreConfig(), salvageTimeoutMs: 0 } });
      try {
        const incident = corruptIncident(store);
        assert.equal(incident.salvaged, 0);
        assert.equal(incident.counter, 'estimated');
        assert.equal(store.outbox.stats().count, 0);
        assert.equal((await store.outbox.append('after', 1)).seq, 1_800_000_000_001);
      } finally {
        await store.close();
      }
    });
  });
});
