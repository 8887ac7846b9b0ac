// reportState commands sharing state/reported publishes (cloud-sync/agent/report-requests.ts),
// on a clock the test moves. The clock can pass the interval's end between request() looking
// and the wait being computed: the publish then starts at once, and the commands after it must
// not join it as if it were still to come (they got `coalesced` and no publish, for good).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ReportRequests } from '../../cloud-sync/agent/report-requests.js';
import { FakeClock } from '../helpers/fake-clock.js';

/** A FakeClock whose now() can be told to move by `step` ms at each of the next calls. */
class SteppingClock extends FakeClock {
  steps: number[] = [];
  override now(): number {
    const step = this.steps.shift();
    if (step !== undefined) this.advance(step);
    return super.now();
  }
}

/** Lets the microtasks of a publish that went out settle (its slot freed). */
const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

test('the interval ending between the look and the wait: the publish starts, later commands get their own', async () => {
  const clock = new SteppingClock();
  let publishes = 0;
  const reports = new ReportRequests(async () => {
    publishes++;
  }, clock, 1000);
  assert.deepEqual(await reports.request(), {});
  assert.equal(publishes, 1);
  await settle();
  clock.advance(999);
  // request() sees 999 ms since the last start; by the time the wait is computed, 1000 have gone.
  clock.steps = [0, 1];
  assert.deepEqual(await reports.request(), {});
  assert.equal(publishes, 2);
  await settle();
  clock.advance(5000);
  assert.deepEqual(await reports.request(), {}, 'a publish of its own, not a share of one that went');
  assert.equal(publishes, 3);
});

test('commands within the interval share one publish; the one that started it is not coalesced', async () => {
  const clock = new FakeClock();
  let publishes = 0;
  const reports = new ReportRequests(async () => {
    publishes++;
  }, clock, 1000);
  await reports.request();
  const waiting = [reports.request(), reports.request(), reports.request()];
  while (clock.pending === 0) await settle(); // the next publish's turn is set once the first is out
  clock.advance(1000);
  assert.deepEqual(await Promise.all(waiting), [{}, { coalesced: true }, { coalesced: true }]);
  assert.equal(publishes, 2);
  assert.equal(clock.pending, 0);
});
