// What the device waits for from the fleet (cloud-sync/agent/awaiting-fleet.ts), on a fake clock:
// acks as ranges in any order, only tracked seqs count, expiry oldest first with a doubling
// timeout that an ack resets, a slow fleet getting more time, the end-to-end window, and a
// reconnect giving a full timeout.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AwaitingFleet } from '../../cloud-sync/agent/awaiting-fleet.js';
import { FakeClock } from '../helpers/fake-clock.js';

const range = (a: number, b: number): number[] => Array.from({ length: b - a + 1 }, (_, i) => a + i);

test('acks are ranges taken as facts: any order, overlapping, repeated; untracked seqs are ignored', () => {
  const clock = new FakeClock();
  const w = new AwaitingFleet(clock, { ackTimeoutMs: 1000, maxResendMs: 8000, maxEvents: 100 });
  const a = w.track(range(1, 10));
  const b = w.track(range(11, 20));
  assert.ok(w.published(a));
  assert.ok(w.published(b));
  assert.equal(w.events, 20);
  // Two serve processes acking out of order, one range overlapping, seqs never sent.
  assert.deepEqual(w.acked([[15, 25]]), range(15, 20));
  assert.deepEqual(w.acked([[1, 3], [2, 5], [15, 16], [-5, 0]]), range(1, 5));
  assert.deepEqual(w.acked([[0, Number.MAX_SAFE_INTEGER]]).sort((x, y) => x - y), [...range(6, 10), ...range(11, 14)]);
  assert.equal(w.events, 0);
  assert.equal(w.nextDeadline(), undefined);
});

test('an ack before the PUBACK: the batch never waits', () => {
  const clock = new FakeClock();
  const w = new AwaitingFleet(clock, { ackTimeoutMs: 1000, maxResendMs: 8000, maxEvents: 100 });
  const a = w.track([1, 2]);
  assert.deepEqual(w.acked([[1, 2]]), [1, 2]);
  assert.equal(w.published(a), false);
  assert.equal(w.nextDeadline(), undefined);
});

test('expiry: unacked seqs come back oldest first; the timeout doubles per round without an ack, up to the max; an ack resets it', () => {
  const clock = new FakeClock();
  const w = new AwaitingFleet(clock, { ackTimeoutMs: 1000, maxResendMs: 3000, maxEvents: 100 });
  const a = w.track(range(1, 5));
  w.published(a);
  clock.advance(500);
  const b = w.track(range(6, 10));
  w.published(b);
  w.acked([[2, 3]]);
  assert.deepEqual(w.expired(), [], 'nothing is due yet');
  clock.advance(500);
  assert.deepEqual(w.expired(), [1, 4, 5], 'the first batch, without its acked seqs');
  assert.equal(w.timeoutMs(), 2000);
  clock.advance(500);
  assert.deepEqual(w.expired(), [6, 7, 8, 9, 10]);
  assert.equal(w.timeoutMs(), 3000, 'capped at maxResendMs');
  assert.equal(w.events, 0);
  const c = w.track([11]);
  w.published(c);
  w.acked([[11, 11]]);
  assert.equal(w.timeoutMs(), 1000, 'back to the base at the first ack');
});

test('the window: full at maxEvents published and unacked; a reconnect gives every waiting batch a full timeout', () => {
  const clock = new FakeClock();
  const w = new AwaitingFleet(clock, { ackTimeoutMs: 1000, maxResendMs: 8000, maxEvents: 10 });
  const a = w.track(range(1, 6));
  assert.equal(w.full, false);
  const b = w.track(range(7, 10));
  assert.equal(w.full, true);
  w.published(a);
  assert.deepEqual(w.drop(b), range(7, 10), 'a failed publish hands its seqs back');
  assert.equal(w.full, false);
  clock.advance(900);
  w.rearm();
  clock.advance(900);
  assert.deepEqual(w.expired(), [], 'rearmed at the reconnect');
  clock.advance(100);
  assert.deepEqual(w.expired(), range(1, 6));
  assert.deepEqual(w.clear(), []);
});

test('a slow fleet gets more time: the base timeout follows three times the smoothed PUBACK-to-ack time', () => {
  const clock = new FakeClock();
  const w = new AwaitingFleet(clock, { ackTimeoutMs: 1000, maxResendMs: 60_000, maxEvents: 100 });
  const a = w.track([1]);
  w.published(a);
  clock.advance(800);
  w.acked([[1, 1]]);
  assert.equal(w.timeoutMs(), 2400);
  const b = w.track([2]);
  w.published(b);
  clock.advance(100);
  w.acked([[2, 2]]);
  assert.equal(w.timeoutMs(), 3 * ((7 * 800 + 100) / 8));
});
