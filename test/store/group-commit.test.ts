// runtime/store/group-commit.ts with an asynchronous commit (what `perch fleet serve` gives it on
// PostgreSQL; the outbox's synchronous use is covered by the outbox suite): one commit in flight
// at a time, what is submitted meanwhile goes in the next group, nothing settles before its
// commit, and a refused group is retried item by item when asked. The commit is held at a gate
// the test opens, so "in flight" is a state the test sets, not a race.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { GroupCommit } from '../../runtime/store/group-commit.js';

/** An async commit held until `open()`; records each group; refuses items that are negative. */
class GatedCommit {
  groups: number[][] = [];
  committed: number[] = [];
  private waiters: Array<() => void> = [];
  private isOpen = false;
  inFlight = 0;
  maxInFlight = 0;

  open(): void {
    this.isOpen = true;
    for (const w of this.waiters.splice(0)) w();
  }

  readonly fn = async (items: readonly number[]): Promise<Array<number | Error>> => {
    this.groups.push([...items]);
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    try {
      if (!this.isOpen) await new Promise<void>((r) => this.waiters.push(r));
      if (items.some((x) => x < 0)) throw new Error('refused');
      this.committed.push(...items);
      return items.map((x) => x * 10);
    } finally {
      this.inFlight--;
    }
  };
}

const turn = (): Promise<void> => new Promise((r) => setImmediate(r));

test('async commit: one group in flight; what comes meanwhile is the next group; each settles after its commit', async () => {
  const gate = new GatedCommit();
  const gc = new GroupCommit<number, number>(gate.fn, (e) => e as Error);
  const settled: number[] = [];
  const track = (x: number): Promise<number> => gc.submit(x).then((v) => {
    assert.ok(gate.committed.includes(x), `${x} settled before its commit`);
    settled.push(x);
    return v;
  });
  const first = [track(1), track(2)];
  await turn();
  assert.deepEqual(gate.groups, [[1, 2]]);
  const second = [track(3), track(4), track(5)];
  await turn();
  await turn();
  assert.deepEqual(gate.groups, [[1, 2]], 'no second commit while one is in flight');
  assert.deepEqual(settled, []);
  assert.equal(gc.waiting, 3);
  gate.open();
  assert.deepEqual(await Promise.all([...first, ...second]), [10, 20, 30, 40, 50]);
  assert.deepEqual(gate.groups, [[1, 2], [3, 4, 5]]);
  assert.equal(gate.maxInFlight, 1);
  assert.equal(gc.commits, 2);
});

test('async commit: a refused group rejects every item, or is retried item by item with retryAlone', async () => {
  const plain = new GatedCommit();
  plain.open();
  const gc = new GroupCommit<number, number>(plain.fn, (e) => new Error(`mapped: ${(e as Error).message}`));
  const all = [gc.submit(1), gc.submit(-1), gc.submit(2)].map((p) => p.then(() => 'ok', (e: Error) => e.message));
  assert.deepEqual(await Promise.all(all), ['mapped: refused', 'mapped: refused', 'mapped: refused']);
  assert.deepEqual(plain.committed, []);

  const retried = new GatedCommit();
  retried.open();
  const failures: number[] = [];
  const gc2 = new GroupCommit<number, number>(retried.fn, (e) => e as Error, { retryAlone: (_e, n) => failures.push(n) });
  const out = [gc2.submit(1), gc2.submit(-1), gc2.submit(2)].map((p) => p.then((v) => v, (e: Error) => e.message));
  assert.deepEqual(await Promise.all(out), [10, 'refused', 20]);
  assert.deepEqual(retried.groups, [[1, -1, 2], [1], [-1], [2]]);
  assert.deepEqual(failures, [3]);
  assert.equal(retried.maxInFlight, 1, 'the retries too, one at a time');
});
