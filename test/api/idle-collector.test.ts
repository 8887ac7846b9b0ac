// Memory back after a burst (runtime/api/idle-collector.ts, docs/reliability.md): a full
// collection once the client budget has been idle for IDLE_MS after a burst, and a follow-up
// FOLLOW_UP_MS later for what connections still closing held; nothing while clients hold bytes
// or after small traffic. Time is a fake clock; the collections are real (collectEverywhere).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ClientBudget } from '../../runtime/api/client-budget.js';
import { BURST_BYTES, FOLLOW_UP_MS, IDLE_MS, IdleCollector } from '../../runtime/api/idle-collector.js';
import { collectEverywhere } from '../../runtime/base/full-collection.js';
import { silentLogger } from '../../runtime/base/log.js';
import { FakeClock } from '../helpers/fake-clock.js';

test('after a burst: one collection once idle, one more FOLLOW_UP_MS later, none while clients hold bytes', (t) => {
  const full = collectEverywhere();
  if (full === null) return t.skip('V8 gc not exposable in this process');
  let runs = 0;
  const clock = new FakeClock();
  const budget = new ClientBudget(4 * BURST_BYTES);
  const collector = new IdleCollector(budget, clock, silentLogger(), () => {
    full();
    runs++;
  });
  const step = (ms: number): void => {
    clock.advance(ms);
    collector.check();
  };
  const small = budget.hold();
  small.add(1000);
  step(IDLE_MS * 2);
  small.release();
  step(IDLE_MS * 2);
  assert.equal(runs, 0, 'no burst: no collection');
  const burst = budget.hold();
  burst.add(BURST_BYTES * 2);
  step(1000);
  step(IDLE_MS * 2);
  assert.equal(runs, 0, 'clients still hold bytes');
  burst.release();
  step(1000);
  step(IDLE_MS - 1000);
  assert.equal(runs, 0, 'not idle long enough yet');
  step(1000);
  assert.equal(runs, 1, 'idle for IDLE_MS after the burst');
  step(FOLLOW_UP_MS - 1000);
  assert.equal(runs, 1);
  step(1000);
  assert.equal(runs, 2, 'the follow-up');
  step(FOLLOW_UP_MS * 3);
  assert.equal(runs, 2, 'nothing more until the next burst');
  assert.equal(collector.count, 2);
});
