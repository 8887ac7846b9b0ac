// Memory back after a burst (runtime/api/idle-collector.ts, docs/reliability.md): a full
// collection once the client budget has been idle for IDLE_MS after a burst, and a follow-up
// FOLLOW_UP_MS later for what connections still closing held; nothing while clients hold bytes
// or after small traffic; glibc's malloc_trim after each collection, once the threads' collections
// are done. Time is a fake clock; the collections are real (collectEverywhere).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ClientBudget } from '../../runtime/api/client-budget.js';
import { BURST_BYTES, FOLLOW_UP_MS, IDLE_MS, IdleCollector } from '../../runtime/api/idle-collector.js';
import { collectEverywhere } from '../../runtime/base/full-collection.js';
import { silentLogger } from '../../runtime/base/log.js';
import type { MallocTrim } from '../../runtime/base/malloc-trim.js';
import { captureLogger } from '../helpers/log-capture.js';
import { FakeClock } from '../helpers/fake-clock.js';

test('after a burst: one collection once idle, one more FOLLOW_UP_MS later, none while clients hold bytes', (t) => {
  const full = collectEverywhere();
  if (full === null) return t.skip('V8 gc not exposable in this process');
  let runs = 0;
  const clock = new FakeClock();
  const budget = new ClientBudget(4 * BURST_BYTES);
  const collector = new IdleCollector(budget, clock, silentLogger(), () => {
    void full();
    runs++;
  }, { available: false, reason: 'test', trim: () => false });
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

test('after each collection, once the threads have answered, malloc_trim runs on the main thread, counted and logged', async (t) => {
  const full = collectEverywhere();
  if (full === null) return t.skip('V8 gc not exposable in this process');
  const clock = new FakeClock();
  const budget = new ClientBudget(4 * BURST_BYTES);
  const { logger, lines } = captureLogger('info');
  let runs = 0;
  let trims = 0;
  let threadsDone = (): void => {};
  const collect = (): Promise<void> => {
    void full();
    runs++;
    return new Promise<void>((resolve) => (threadsDone = resolve));
  };
  const trim: MallocTrim = { available: true, reason: null, trim: () => (trims++, true) };
  const collector = new IdleCollector(budget, clock, logger, collect, trim);
  const step = (ms: number): void => {
    clock.advance(ms);
    collector.check();
  };
  const burst = budget.hold();
  burst.add(BURST_BYTES * 2);
  step(1000);
  burst.release();
  step(1000);
  step(IDLE_MS);
  assert.equal(runs, 1);
  await Promise.resolve();
  assert.equal(trims, 0, 'not before the threads have collected');
  threadsDone();
  await collector.settled;
  assert.equal(trims, 1, 'trimmed once the threads were done');
  assert.equal(collector.trimCount, 1);
  const line = lines.find((l) => l.msg.includes('malloc_trim'));
  assert.ok(line, 'the trim is logged');
  assert.equal(line.released, true);
  assert.equal(typeof line.rssBeforeMB, 'number');
  assert.equal(typeof line.rssAfterMB, 'number');
  step(FOLLOW_UP_MS);
  assert.equal(runs, 2, 'the follow-up collection');
  threadsDone();
  await collector.settled;
  assert.equal(trims, 2, 'and its trim');
});

test('without the addon: collections as before, no trim, and the reason logged once at start', () => {
  const clock = new FakeClock();
  const { logger, lines } = captureLogger('info');
  const trim: MallocTrim = { available: false, reason: 'no addon here', trim: () => assert.fail('not available: never called') };
  const collector = new IdleCollector(new ClientBudget(BURST_BYTES), clock, logger, () => undefined, trim);
  collector.start();
  collector.stop();
  const said = lines.filter((l) => l.msg.includes('malloc_trim not available'));
  assert.equal(said.length, 1);
  assert.equal(said[0]!.reason, 'no addon here');
});
