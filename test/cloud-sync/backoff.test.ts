// Reconnect backoff with full jitter, on a fake clock: every delay lies between reconnect.minMs
// and the exponential ceiling, the ceiling is capped at reconnect.maxMs, and no attempt happens
// before its delay has passed. Also the circuit breaker's window and the token bucket on the
// same fake clock.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { backoffCeiling, fullJitterDelay } from '../../cloud-sync/agent/backoff.js';
import { CircuitBreaker, type Trip } from '../../cloud-sync/agent/circuit-breaker.js';
import { Connection } from '../../cloud-sync/agent/connection.js';
import { emptyStats } from '../../cloud-sync/agent/stats.js';
import { TokenBucket } from '../../cloud-sync/agent/token-bucket.js';
import { FakeClock } from '../helpers/fake-clock.js';
import { freePort } from '../helpers/free-port.js';
import { waitFor } from './helpers/mqtt-client.js';
import { makePort } from './helpers/port.js';

test('full jitter: uniform between minMs and min(maxMs, minMs * 2^attempt)', () => {
  const o = { minMs: 100, maxMs: 5000 };
  assert.deepEqual([0, 1, 2, 3, 5, 6, 50, 5000].map((a) => backoffCeiling(a, o.minMs, o.maxMs)), [100, 200, 400, 800, 3200, 5000, 5000, 5000]);
  assert.equal(fullJitterDelay(4, { ...o, random: () => 0 }), 100);
  assert.equal(fullJitterDelay(4, { ...o, random: () => 0.999999 }), 1600);
  assert.equal(fullJitterDelay(30, { ...o, random: () => 0.5 }), 2550);
  for (let a = 0; a < 40; a++) {
    const d = fullJitterDelay(a, o);
    assert.ok(d >= 100 && d <= backoffCeiling(a, 100, 5000), `attempt ${a}: ${d}`);
  }
});

test('the connection reconnects on the injected clock, with jittered delays bounded by min and max', async () => {
  const clock = new FakeClock();
  const dead = `mqtt://127.0.0.1:${await freePort()}`;
  const t = makePort({ mqttUrl: dead, clock, cloud: { reconnect: { minMs: 100, maxMs: 1000 } } });
  const draws = [0.9, 0.1, 0.5, 0.99, 0.0, 0.7, 0.3, 0.8];
  let n = 0;
  const conn = new Connection(t.port, emptyStats(), { random: () => draws[n++ % draws.length] ?? 0 });
  conn.start();
  try {
    for (let attempt = 0; attempt < 8; attempt++) {
      // The refused connection schedules the next attempt on the fake clock, and only that.
      await waitFor(() => conn.delays.length === attempt + 1, 5000, `failure ${attempt + 1}`);
      const delay = conn.delays[attempt] ?? -1;
      const ceiling = Math.min(1000, 100 * 2 ** attempt);
      assert.ok(delay >= 100 && delay <= ceiling, `attempt ${attempt}: ${delay} not in [100, ${ceiling}]`);
      assert.equal(delay, Math.round(100 + (draws[attempt] ?? 0) * (ceiling - 100)));
      // The next attempt is a timer on the fake clock, and only it starts one: one ms short of
      // the delay it has not fired, and it fires one ms later.
      clock.advance(delay - 1);
      assert.equal(clock.nextDueIn(), 1, 'no attempt before the delay');
      assert.equal(conn.delays.length, attempt + 1);
      clock.advance(1);
    }
    assert.ok(conn.delays.slice(4).every((d) => d <= 1000), 'capped at maxMs');
    assert.equal(conn.online, false);
  } finally {
    await conn.stop();
    await t.close(true);
  }
});

test('circuit breaker: only outcomes of the watched version inside the window count', () => {
  const clock = new FakeClock();
  const t = makePort({ mqttUrl: 'mqtt://127.0.0.1:1', clock, cloud: { rollback: { errorRatio: 0.5, minRequests: 4, windowMs: 1000 } } });
  const trips: Trip[] = [];
  const b = new CircuitBreaker(t.port, (trip) => trips.push(trip));
  b.start();
  b.watch('m', 2);
  const fail = (version = 2) => t.infer({ model: 'm', version, ok: false, code: 'PERCH_ERR_INFERENCE_FAILED' });
  fail();
  fail();
  fail(1);
  t.infer({ model: 'm', version: 2, ok: false, code: 'PERCH_ERR_QUEUE_FULL' }); // load, not the model
  clock.advance(1500); // those two fall out of the window
  t.infer({ model: 'm', version: 2, ok: true });
  t.infer({ model: 'm', version: 2, ok: true });
  fail();
  assert.equal(trips.length, 0, '3 requests: under minRequests');
  fail();
  assert.equal(trips.length, 1);
  assert.deepEqual({ requests: trips[0]?.requests, failures: trips[0]?.failures }, { requests: 4, failures: 2 });
  fail();
  assert.equal(trips.length, 1, 'trips once');
  b.stop();
  void t.close(true);
});

test('token bucket: one second of burst, then the rate, on the injected clock; 0 = no cap', () => {
  const clock = new FakeClock();
  const b = new TokenBucket(clock, 10);
  assert.equal(b.available(), 10);
  b.take(10);
  assert.equal(b.available(), 0);
  assert.equal(b.waitMs(1), 100);
  clock.advance(500);
  assert.equal(b.available(), 5);
  b.setRate(0);
  assert.equal(b.available(), Infinity);
  assert.equal(b.waitMs(1_000_000), 0);
});
