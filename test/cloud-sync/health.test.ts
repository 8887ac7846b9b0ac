// In-service health (cloud-sync/agent/health.ts): error rate and p99 per model version over the
// sliding window, on the fake clock; refusals for load are not the model's fault; old buckets
// leave the window; state/reported is asked for only after inference happened.
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { HealthMonitor } from '../../cloud-sync/agent/health.js';
import { FakeClock } from '../helpers/fake-clock.js';
import { makePort, type TestPort } from './helpers/port.js';

const ports: TestPort[] = [];
after(async () => {
  for (const p of ports) await p.close(true);
});

function setup(): { t: TestPort; clock: FakeClock; h: HealthMonitor; reports: () => number } {
  const clock = new FakeClock();
  // No broker is contacted: the monitor only reads the port.
  const t = makePort({ mqttUrl: 'mqtt://127.0.0.1:1', clock, cloud: { health: { windowMs: 10_000, reportMs: 1000 } } });
  ports.push(t);
  let n = 0;
  const h = new HealthMonitor(t.port, () => n++);
  h.start();
  return { t, clock, h, reports: () => n };
}

test('error rate and p99 per model version over the window', () => {
  const { t, clock, h } = setup();
  for (let i = 0; i < 99; i++) t.infer({ model: 'vad', version: 2, ok: true, latencyMs: 2 });
  t.infer({ model: 'vad', version: 2, ok: true, latencyMs: 400 });
  for (let i = 0; i < 10; i++) t.infer({ model: 'vad', version: 2, ok: false, code: 'PERCH_ERR_INFERENCE_FAILED', latencyMs: 1 });
  // Load and shutdown refusals say nothing about the model.
  for (let i = 0; i < 50; i++) t.infer({ model: 'vad', version: 2, ok: false, code: 'PERCH_ERR_QUEUE_FULL' });
  t.infer({ model: 'vad', version: 1, ok: true, latencyMs: 1 });
  const r = h.build();
  assert.equal(r.windowMs, 10_000);
  const v2 = r.models.vad?.['2'];
  assert.equal(v2?.requests, 110);
  assert.equal(v2?.errors, 10);
  assert.equal(v2?.errorRate, 10 / 110);
  // 99th of 110 samples is a 2 ms one; the p99 is its bin's upper edge, within 15 % above.
  assert.ok(v2 && v2.p99Ms !== null && v2.p99Ms >= 2 && v2.p99Ms <= 2.3, `p99 ${v2?.p99Ms}`);
  assert.equal(r.models.vad?.['1']?.requests, 1);
  // A slow tail above 1 %: the p99 follows it.
  for (let i = 0; i < 20; i++) t.infer({ model: 'vad', version: 2, ok: true, latencyMs: 400 });
  const slow = h.build().models.vad?.['2']?.p99Ms ?? 0;
  assert.ok(slow >= 400 && slow <= 460, `p99 ${slow}`);
  // The window slides: 11 s later nothing of it is left, and versions without requests are left out.
  clock.advance(11_000);
  assert.deepEqual(h.build().models, {});
  h.stop();
});

test('state/reported is asked for every reportMs only while inference happens', () => {
  const { t, clock, h, reports } = setup();
  clock.advance(5000);
  assert.equal(reports(), 0);
  t.infer({ model: 'vad', version: 2, ok: true, latencyMs: 1 });
  clock.advance(1000);
  assert.equal(reports(), 1);
  clock.advance(3000);
  assert.equal(reports(), 1);
  h.stop();
});
