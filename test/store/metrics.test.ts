import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Registry } from 'prom-client';
import { registerStoreMetrics } from '../../runtime/store/metrics.js';
import { cacheKey } from '../../runtime/store/result-cache-key.js';
import { FakeClock } from '../helpers/fake-clock.js';
import { storeHarness } from './helpers/store-harness.js';

const tensor = (v: number) => [{ name: 'x', datatype: 'FP32' as const, shape: [1], data: new Float32Array([v]) }];

function value(text: string, line: string): number {
  const found = text.split('\n').find((l) => l.startsWith(`${line} `));
  assert.ok(found, `no sample ${line} in:\n${text}`);
  return Number(found.slice(line.length + 1));
}

void test('store metrics: outbox gauges and drop counters, cache counters and gauges by model and version', async () => {
  const clock = new FakeClock();
  const h = await storeHarness({ clock, outboxLimits: { maxEventBytes: 1000, ttlSeconds: 10, maxBytes: 10_000 } });
  try {
    const registry = new Registry();
    const { outbox, cache } = h.store;
    registerStoreMetrics(registry, { outbox, cache });

    let text = await registry.metrics();
    assert.equal(value(text, 'perch_outbox_events'), 0);
    assert.equal(value(text, 'perch_outbox_dropped_total{reason="ttl",type="*"}'), 0);
    assert.equal(value(text, 'perch_outbox_dropped_total{reason="overflow",type="*"}'), 0);

    await outbox.append('a', 'x'.repeat(100));
    clock.advance(11_000);
    await outbox.append('b', 1);
    clock.advance(2_000);
    text = await registry.metrics();
    assert.equal(value(text, 'perch_outbox_events'), 2);
    assert.equal(value(text, 'perch_outbox_bytes'), 1 + 102 + 1 + 1);
    assert.equal(value(text, 'perch_outbox_oldest_age_seconds'), 13);
    await outbox.sweep();
    text = await registry.metrics();
    assert.equal(value(text, 'perch_outbox_dropped_total{reason="ttl",type="*"}'), 1);
    assert.equal(value(text, 'perch_outbox_events'), 1);
    assert.equal(value(text, 'perch_outbox_oldest_age_seconds'), 2);

    const k1 = cacheKey('ocr', 2, tensor(1));
    cache.get(k1, 'ocr', 2);
    cache.put(k1, 'ocr', 2, tensor(9));
    cache.flush();
    cache.get(k1, 'ocr', 2);
    cache.get(k1, 'ocr', 2);
    cache.get(cacheKey('vad', 1, tensor(1)), 'vad', 1);
    text = await registry.metrics();
    assert.equal(value(text, 'perch_cache_hits_total{model="ocr",version="2"}'), 2);
    assert.equal(value(text, 'perch_cache_misses_total{model="ocr",version="2"}'), 1);
    assert.equal(value(text, 'perch_cache_misses_total{model="vad",version="1"}'), 1);
    assert.equal(value(text, 'perch_cache_entries{model="ocr",version="2"}'), 1);
    assert.ok(value(text, 'perch_cache_bytes{model="ocr",version="2"}') > 0);
    assert.equal(value(text, 'perch_cache_evictions_total{model="ocr",version="2"}'), 0);

    // A second runtime in the same process registers on its own registry without clashing.
    registerStoreMetrics(new Registry(), { outbox, cache });
  } finally {
    await h.destroy();
  }
});

void test('store metrics: drops and refusals by type label (the overflowByType key, * for the default)', async () => {
  const h = await storeHarness({ outboxLimits: { maxEventBytes: 1000, maxBytes: 4096, overflowByType: { 'telemetry.*': 'drop-oldest' } } });
  try {
    const registry = new Registry();
    const { outbox } = h.store;
    registerStoreMetrics(registry, { outbox });
    let text = await registry.metrics();
    assert.equal(value(text, 'perch_outbox_refused_total{type="*"}'), 0);
    for (let i = 0; i < 4; i++) await outbox.append('telemetry.temp', 'x'.repeat(900));
    for (let i = 0; i < 4; i++) await outbox.append('alarm', 'x'.repeat(900)); // each pushes out one telemetry event
    await assert.rejects(outbox.append('alarm', 'x'.repeat(900)), { code: 'PERCH_ERR_STORE_FULL' });
    await assert.rejects(outbox.append('telemetry.rpm', 'x'.repeat(900)), { code: 'PERCH_ERR_STORE_FULL' });
    text = await registry.metrics();
    assert.equal(value(text, 'perch_outbox_dropped_total{reason="overflow",type="telemetry.*"}'), 4);
    assert.equal(value(text, 'perch_outbox_dropped_total{reason="overflow",type="*"}'), 0);
    assert.equal(value(text, 'perch_outbox_refused_total{type="*"}'), 1);
    assert.equal(value(text, 'perch_outbox_refused_total{type="telemetry.*"}'), 1);
  } finally {
    await h.destroy();
  }
});
