// The wait of a model update refused PERCH_ERR_MODEL_NO_SPACE (space-wait.ts), on a fake clock:
// the free space is looked at with a doubling wait up to the cap (no busy loop), a look that
// finds too little logs nothing at info, the update is tried again once it fits, and the waits
// keep growing across retries of the same file that meet a full disk again.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { PerchError } from '../../runtime/base/errors.js';
import type { ModelSpec } from '../../cloud-sync/protocol/index.js';
import { SpaceWaiter } from '../../cloud-sync/agent/model-update/space-wait.js';
import { FakeClock } from '../helpers/fake-clock.js';
import { captureLogger } from '../helpers/log-capture.js';

const SPEC: ModelSpec = { version: 2, sha256: 'ab'.repeat(32), size: 1000, chunkSize: 100 };
const FULL = new PerchError('PERCH_ERR_MODEL_NO_SPACE', 'disk full');

function setup() {
  const clock = new FakeClock();
  const { logger, lines } = captureLogger('info');
  let fits = false;
  const looks: number[] = [];
  const retries: number[] = [];
  const w = new SpaceWaiter(clock, logger, {
    check: () => {
      looks.push(clock.now());
      return fits ? null : FULL;
    },
    retry: (_name, _spec, attempt) => retries.push(attempt),
  }, { firstMs: 1000, maxMs: 8000 });
  return { clock, lines, w, looks, retries, setFits: (v: boolean) => (fits = v) };
}

test('looks at the disk with a doubling wait up to the cap, quietly, and retries once it fits', () => {
  const s = setup();
  const t0 = s.clock.now();
  assert.equal(s.w.wait('m', SPEC), 1000);
  s.clock.advance(60_000);
  // 1, 2, 4, 8, then every 8 s (the cap): 1+2+4+8 = 15 s, then 23, 31, ... 55.
  assert.deepEqual(s.looks.map((t) => t - t0), [1000, 3000, 7000, 15000, 23000, 31000, 39000, 47000, 55000]);
  assert.equal(s.clock.pending, 1, 'one timer, never more');
  assert.deepEqual(s.retries, []);
  assert.equal(s.lines.length, 1, 'one line when the wait starts; a look that finds too little logs nothing at info');
  s.setFits(true);
  s.clock.advance(8000);
  assert.deepEqual(s.retries, [1]);
  assert.equal(s.w.isWaiting('m'), false);
  assert.equal(s.clock.pending, 0);
  // The retry met a full disk again: the wait goes on from where it was, not from 1 s.
  s.setFits(false);
  assert.equal(s.w.wait('m', SPEC), 8000);
  s.setFits(true);
  s.clock.advance(8000);
  assert.deepEqual(s.retries, [1, 2]);
});

test('a new spec, a removal or stop ends the wait; another file starts its backoff afresh', () => {
  const s = setup();
  s.w.wait('m', SPEC);
  s.clock.advance(3000);
  s.w.clear('m');
  assert.equal(s.clock.pending, 0);
  s.clock.advance(60_000);
  assert.equal(s.looks.length, 2);
  assert.equal(s.w.wait('m', SPEC), 4000, 'the same file: its backoff is kept');
  assert.equal(s.w.wait('m', { ...SPEC, version: 3 }), 1000, 'another file starts again');
  s.w.reset('m');
  assert.equal(s.w.wait('m', SPEC), 1000, 'forgotten: starts again');
  s.w.stop();
  assert.equal(s.clock.pending, 0);
  assert.equal(s.w.isWaiting('m'), false);
});

test('a look that fails for another reason than space ends the wait without a retry', () => {
  const clock = new FakeClock();
  const retries: number[] = [];
  const w = new SpaceWaiter(clock, captureLogger('info').logger, {
    check: () => new PerchError('PERCH_ERR_MODEL_TOO_LARGE', 'over maxModelBytes now'),
    retry: (_n, _s, a) => retries.push(a),
  }, { firstMs: 1000, maxMs: 8000 });
  w.wait('m', SPEC);
  clock.advance(60_000);
  assert.deepEqual(retries, []);
  assert.equal(w.isWaiting('m'), false);
  assert.equal(clock.pending, 0);
});
