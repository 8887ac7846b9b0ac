// Group commit (cloud-sync/fleet/serve/ingest-commit.ts over runtime/store/group-commit.ts, docs/fleet.md "Group commit") on a real
// SQLite fleet store: writes submitted while a transaction is in flight are stored together in
// the next one, and no write's promise (serve's PUBACK and device ack wait on it) settles before
// the transaction holding it committed. The store is held at a gate (the real store behind it)
// so that "in flight" is a state the test sets, not a race.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { ingestCommit } from '../../cloud-sync/fleet/serve/ingest-commit.js';
import { newStats } from '../../cloud-sync/fleet/serve/stats.js';
import type { FleetStore, IngestWrite } from '../../cloud-sync/fleet/store/fleet-store.js';
import { DB_FILE, SqliteFleetStore } from '../../cloud-sync/fleet/store/sqlite-store.js';
import type { EventMessage } from '../../cloud-sync/protocol/schemas.js';
import { silentLogger } from '../../runtime/base/log.js';
import { TempDirs } from './harness.js';

const temp = new TempDirs();
after(() => temp.cleanup());

function events(first: number, n: number): EventMessage[] {
  return Array.from({ length: n }, (_, i) => ({ id: `e-${first + i}`, seq: first + i, ts: 1, type: 't', payload: { i: first + i } }));
}

/** The real store behind a gate: each ingest waits for `open()`; records the group sizes. */
class GatedStore implements Pick<FleetStore, 'ingest'> {
  groups: number[] = [];
  private gate: Promise<void> = Promise.resolve();
  private release: () => void = () => undefined;
  constructor(private readonly real: FleetStore) {}
  close(): void {
    this.gate = new Promise((r) => (this.release = r));
  }
  open(): void {
    this.release();
  }
  async ingest(writes: readonly IngestWrite[], at: number): Promise<number[]> {
    this.groups.push(writes.length);
    await this.gate;
    return this.real.ingest(writes, at);
  }
}

test('writes that arrive while a commit is in flight share the next one; each settles only after its commit', async () => {
  const dir = temp.make();
  const real = SqliteFleetStore.open(dir);
  const reader = new SqliteFleetStore(join(dir, DB_FILE), { readOnly: true });
  const gated = new GatedStore(real);
  const stats = newStats();
  const commit = ingestCommit(gated, () => 42, stats, silentLogger());
  gated.close();

  // Whenever a promise settles, what it covers must already be readable from another connection.
  const settledAndDurable: string[] = [];
  const track = async (deviceId: string, p: Promise<number>, firstSeq: number, n: number): Promise<number> => {
    const stored = await p;
    const held = (await reader.events(deviceId, firstSeq - 1, n)).map((e) => e.seq);
    assert.deepEqual(held, Array.from({ length: n }, (_, i) => firstSeq + i), `${deviceId} ${firstSeq}.. committed before its promise settled`);
    settledAndDurable.push(`${deviceId}:${firstSeq}`);
    return stored;
  };

  const first = track('pi-1', commit.submit({ kind: 'events', deviceId: 'pi-1', events: events(1, 10) }), 1, 10);
  await new Promise((r) => setImmediate(r)); // the drain starts: group 1 is in flight at the gate
  assert.deepEqual(gated.groups, [1]);
  const rest = [
    track('pi-2', commit.submit({ kind: 'events', deviceId: 'pi-2', events: events(1, 10) }), 1, 10),
    track('pi-1', commit.submit({ kind: 'events', deviceId: 'pi-1', events: events(5, 10) }), 5, 10),
    track('pi-3', commit.submit({ kind: 'events', deviceId: 'pi-3', events: events(1, 3) }), 1, 3),
  ];
  const status = commit.submit({ kind: 'status', deviceId: 'pi-3', status: { online: true }, json: '{"online":true}' });
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(settledAndDurable, [], 'nothing settles while its commit waits');
  assert.equal(await reader.device('pi-3'), undefined);

  gated.open();
  assert.equal(await first, 10);
  assert.deepEqual(await Promise.all(rest), [10, 4, 3]); // pi-1 5..14: 5..10 were held already
  assert.equal(await status, 0);
  assert.deepEqual(gated.groups, [1, 4], 'the four writes that waited went in one transaction');
  assert.equal((await reader.device('pi-3'))?.online, true);
  assert.deepEqual({ commits: stats.commits, groupedWrites: stats.groupedWrites, largestGroup: stats.largestGroup }, { commits: 2, groupedWrites: 5, largestGroup: 4 });
  await reader.close();
  await real.close();
});

test('a write the store refuses fails alone: the rest of its group is stored', async () => {
  const dir = temp.make();
  const real = SqliteFleetStore.open(dir);
  const gated = new GatedStore(real);
  const commit = ingestCommit(gated, () => 1, newStats(), silentLogger());
  gated.close();
  const a = commit.submit({ kind: 'events', deviceId: 'pi-1', events: events(1, 2) });
  await new Promise((r) => setImmediate(r));
  const good = commit.submit({ kind: 'events', deviceId: 'pi-2', events: events(1, 2) });
  // A NULL type: the database refuses the row (the event schema never lets one through).
  const bad = assert.rejects(commit.submit({ kind: 'events', deviceId: 'pi-3', events: [{ id: 'x', seq: 1, ts: 1, type: null as unknown as string, payload: null }] }));
  const good2 = commit.submit({ kind: 'reported', deviceId: 'pi-2', json: '{"desiredVersion":3}' });
  gated.open();
  assert.equal(await a, 2);
  assert.equal(await good, 2);
  await bad;
  assert.equal(await good2, 0);
  assert.deepEqual(gated.groups, [1, 3, 1, 1, 1], 'the failed group of 3, then each alone');
  assert.deepEqual((await real.events('pi-2', 0)).map((e) => e.seq), [1, 2]);
  assert.deepEqual((await real.device('pi-2'))?.reported, { desiredVersion: 3 });
  assert.deepEqual(await real.events('pi-3', 0), []);
  await real.close();
});
