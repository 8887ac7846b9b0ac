// The intake bounds the inference input one turn of the event loop takes in (runtime/api/intake.ts,
// docs/reliability.md "Control plane first"). Under 300 WebSocket clients that never read, one turn
// of the poll phase read and refused the frames of every connection in turn and took 2-7 s: the
// lag the intake's sampler measures is known only after such a turn, too late for it. These tests
// make a turn long for real (the test's own synchronous work: no timer can run inside it) and
// check that connections bringing input later in that turn are parked, and read again afterwards.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Intake, MAX_LAG_PARK_MS, MAX_REFUSAL_PARK_MS, REFUSAL_PARK_MS, TURN_INTAKE_MS, type Parkable } from '../../runtime/api/intake.js';
import { waitFor } from '../helpers/wait.js';

const MAX_LAG_MS = 30;

/** What the intake did to one connection (the intake only calls pause and resume). */
class Conn implements Parkable {
  paused = false;
  pauses = 0;
  closed = false;
  pause(): void {
    this.paused = true;
    this.pauses++;
  }
  resume(): void {
    this.paused = false;
  }
}

/** Keeps this turn of the event loop busy for `ms`: nothing else runs meanwhile. */
function busyFor(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end) {
    // the turn goes on
  }
}

describe('intake: one turn takes in a bounded amount of inference input', () => {
  test('a connection that brings input in a turn already longer than maxLagMs is parked, and read again after it', async () => {
    const intake = new Intake({ maxLagMs: MAX_LAG_MS });
    try {
      const first = new Conn();
      intake.pace(first);
      assert.equal(first.pauses, 0, 'the first input of a turn is taken in');
      // The sampler's timer is due every 10 ms and cannot run while this turn goes on.
      busyFor(10 + MAX_LAG_MS + 30);
      const late = Array.from({ length: 5 }, () => new Conn());
      for (const c of late) intake.pace(c);
      assert.deepEqual(late.map((c) => c.paused), [true, true, true, true, true], 'input later in the long turn is parked');
      assert.equal(intake.parkedCount, 5);
      // Once the turn has ended the parked connections are read again (at the latest MAX_LAG_PARK_MS later).
      await waitFor(() => late.every((c) => !c.paused), MAX_LAG_PARK_MS + 20_000, 'the parked connections to be read again');
      assert.equal(intake.parkedCount, 0);
    } finally {
      intake.close();
    }
  });

  test('a turn takes in TURN_INTAKE_MS of input, less than maxLagMs: a connection later in it is parked', async () => {
    const intake = new Intake({ maxLagMs: MAX_LAG_MS });
    try {
      intake.pace(new Conn());
      // Past the in-turn budget (and the sampler's period), not past maxLagMs: turns of 40-50 ms
      // back to back kept health p99 at 70 ms on a quiet machine (docs/reliability.md).
      assert.ok(TURN_INTAKE_MS + 5 < MAX_LAG_MS);
      busyFor(10 + TURN_INTAKE_MS + 5);
      const late = new Conn();
      intake.pace(late);
      assert.equal(late.paused, true, 'input past the in-turn budget is parked');
      await waitFor(() => !late.paused, MAX_LAG_PARK_MS + 20_000, 'the parked connection to be read again');
    } finally {
      intake.close();
    }
  });

  test('a connection closed while parked is dropped, not resumed', async () => {
    const intake = new Intake({ maxLagMs: MAX_LAG_MS });
    try {
      intake.pace(new Conn());
      busyFor(10 + MAX_LAG_MS + 30);
      const gone = new Conn();
      intake.pace(gone);
      assert.equal(gone.paused, true);
      gone.closed = true;
      await waitFor(() => intake.parkedCount === 0, MAX_LAG_PARK_MS + 20_000, 'the closed connection to leave the parked list');
      assert.equal(gone.paused, true, 'a closed connection is not read again');
    } finally {
      intake.close();
    }
  });

  test('refusals that find their connection parked already double nothing: one strike per park, however many requests it had out', async () => {
    const intake = new Intake({ maxLagMs: MAX_LAG_MS });
    try {
      const ws = new Conn();
      // A WebSocket client with 16 requests out, all refused by one full queue: one park.
      for (let i = 0; i < 16; i++) intake.refused(ws);
      assert.equal(ws.pauses, 1);
      assert.equal(intake.strikesOf(ws), 1, 'one strike, not 16 (16 reached the longest park at once)');
      assert.ok(REFUSAL_PARK_MS * 2 ** 15 > MAX_REFUSAL_PARK_MS, 'counted per refusal, 16 would have been the longest park');
      await waitFor(() => !ws.paused, REFUSAL_PARK_MS + MAX_LAG_PARK_MS + 20_000, 'the connection to be read again');
      // Read again, its next requests are refused too: the second park of the row, twice as long.
      for (let i = 0; i < 16; i++) intake.refused(ws);
      assert.equal(ws.pauses, 2);
      assert.equal(intake.strikesOf(ws), 2);
      // A closed connection is not parked, and gets no strike.
      const gone = new Conn();
      gone.closed = true;
      intake.refused(gone);
      assert.equal(gone.pauses, 0);
      assert.equal(intake.strikesOf(gone), 0);
    } finally {
      intake.close();
    }
  });
});
