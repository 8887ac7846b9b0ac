// observeEach (runtime/base/histogram-batch.ts) must leave a histogram exactly as one observe()
// per value does: the same bucket counts, sum and count in /metrics, for every series.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Histogram, Registry } from 'prom-client';
import { observeEach } from '../../runtime/base/histogram-batch.js';

const BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

function histogram(): { registry: Registry; h: Histogram<'model' | 'version'> } {
  const registry = new Registry();
  const h = new Histogram({ name: 'q_seconds', help: 'q', labelNames: ['model', 'version'], buckets: BUCKETS, registers: [registry] });
  return { registry, h };
}

// Waits in ms as the batcher gives them: on bucket bounds, between them, zero, past the last.
const BATCHES: Array<[Record<'model' | 'version', string>, number[]]> = [
  [{ model: 'vad', version: '1' }, [0, 0.1, 0.25, 0.2500001, 1, 3.7, 25, 250, 12_000]],
  [{ model: 'vad', version: '2' }, [0.5]],
  [{ model: 'vad', version: '1' }, [0.05, 0.05, 0.05, 7, 0.999, 1000]],
  [{ model: 'ocr', version: '1' }, []],
  [{ model: 'ocr', version: '1' }, [2.5, 5, 10, 50, 100, 500]],
];

test('a batch observed at once reads in /metrics as one observe() per value', async () => {
  const one = histogram();
  const each = histogram();
  for (const [labels, waits] of BATCHES) {
    for (const ms of waits) one.h.observe(labels, ms / 1000);
    observeEach(each.h, labels, waits, 1000);
  }
  const text = await each.registry.metrics();
  assert.equal(text, await one.registry.metrics());
  assert.match(text, /^q_seconds_count\{model="vad",version="1"\} 15$/m);
  assert.match(text, /^q_seconds_bucket\{le="0.00025",model="vad",version="1"\} 6$/m);
});

test('after a reset the next batch starts a new series', async () => {
  const one = histogram();
  const each = histogram();
  for (const side of [one, each]) side.h.observe({ model: 'vad', version: '1' }, 0.001);
  one.h.reset();
  each.h.reset();
  for (const ms of [0.2, 4, 40]) one.h.observe({ model: 'vad', version: '1' }, ms / 1000);
  observeEach(each.h, { model: 'vad', version: '1' }, [0.2, 4, 40], 1000);
  assert.equal(await each.registry.metrics(), await one.registry.metrics());
});

test('a value that is not a number is refused as observe() refuses it', () => {
  const { h } = histogram();
  assert.throws(() => observeEach(h, { model: 'vad', version: '1' }, [1, Number.NaN], 1000), TypeError);
});
