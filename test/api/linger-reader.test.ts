// Lingering connections are read a few at a time (runtime/api/http/linger-reader.ts): however
// many linger, one tick of the reader resumes at most LINGER_READS_PER_TICK of them, for one turn
// of the loop, in turn. Time is a fake clock; the turn's end is a real setImmediate.
import assert from 'node:assert/strict';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { test } from 'node:test';
import { LINGER_READS_PER_TICK, LINGER_TICK_MS, LingerReader } from '../../runtime/api/http/linger-reader.js';
import type { Parkable } from '../../runtime/api/intake.js';
import { FakeClock } from '../helpers/fake-clock.js';

class Conn implements Parkable {
  reading = true;
  reads = 0;
  closed = false;
  pause(): void {
    this.reading = false;
  }
  resume(): void {
    this.reading = true;
    this.reads++;
  }
}

test('lingering connections are read a few per tick, each in its turn, and paused again after it', async () => {
  const clock = new FakeClock();
  const reader = new LingerReader(clock);
  const conns = Array.from({ length: 10 }, () => new Conn());
  for (const c of conns) reader.add(c);
  assert.equal(conns.filter((c) => c.reading).length, 0, 'a lingering connection is not read until its turn');
  const rounds = 10 / LINGER_READS_PER_TICK;
  for (let round = 0; round < rounds; round++) {
    clock.advance(LINGER_TICK_MS);
    assert.equal(conns.filter((c) => c.reading).length, LINGER_READS_PER_TICK, `tick ${round}: at most ${LINGER_READS_PER_TICK} read`);
    await nextTurn();
    assert.equal(conns.filter((c) => c.reading).length, 0, `tick ${round}: paused after one turn`);
  }
  assert.deepEqual(conns.map((c) => c.reads), conns.map(() => 1), 'every connection had one turn before any had two');
  // A closed connection leaves the rotation; one removed (its socket closed) as well.
  for (const c of conns.slice(0, 5)) c.closed = true;
  reader.remove(conns[5] as Conn);
  for (let round = 0; round < 5; round++) {
    clock.advance(LINGER_TICK_MS);
    await nextTurn();
  }
  assert.equal(reader.size, 4);
  assert.deepEqual(conns.slice(0, 6).map((c) => c.reads), [1, 1, 1, 1, 1, 1]);
});
