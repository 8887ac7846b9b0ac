// InferenceMetrics.observeBatch tallies items and session runs in plain numbers and adds a
// batch's times to its histograms in one go (docs/benchmarks.md, issue 20): /metrics must read
// as it did with one prom-client call per item count, run and value.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Counter, Histogram, Registry } from 'prom-client';
import { InferenceMetrics } from '../../runtime/base/metrics.js';

const BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const NAMES = ['perch_inference_count_total', 'perch_inference_exec_count_total', 'perch_compute_duration_seconds', 'perch_queue_duration_seconds'];

// [model, version, items, compute seconds, queue waits in ms]
const BATCHES: Array<[string, string, number, number, number[]]> = [
  ['vad', '1', 3, 0.0012, [0, 0.4, 1.3]],
  ['vad', '1', 1, 0.0009, [2.5]],
  ['ocr', '1', 2, 0.31, [12, 250]],
  ['vad', '2', 16, 0.004, Array.from({ length: 16 }, (_, i) => i * 0.37)],
  ['vad', '1', 5, 12, [0.1, 0.25, 0.2500001, 1000, 12_000]],
];

function lines(text: string): string[] {
  return text.split('\n').filter((l) => NAMES.some((n) => l.startsWith(n))).sort();
}

test('observeBatch reads in /metrics as one prom-client call per count, run and value', async () => {
  const registry = new Registry();
  const m = new InferenceMetrics(registry);
  const plain = new Registry();
  const labelNames = ['model', 'version'] as const;
  const items = new Counter({ name: NAMES[0] as string, help: 'h', labelNames, registers: [plain] });
  const execs = new Counter({ name: NAMES[1] as string, help: 'h', labelNames, registers: [plain] });
  const compute = new Histogram({ name: NAMES[2] as string, help: 'h', labelNames, buckets: BUCKETS, registers: [plain] });
  const queue = new Histogram({ name: NAMES[3] as string, help: 'h', labelNames, buckets: BUCKETS, registers: [plain] });
  for (const [model, version, n, seconds, waits] of BATCHES) {
    m.observeBatch(model, version, n, seconds, waits);
    items.inc({ model, version }, n);
    execs.inc({ model, version });
    compute.observe({ model, version }, seconds);
    for (const ms of waits) queue.observe({ model, version }, ms / 1000);
  }
  const want = lines(await plain.metrics());
  assert.ok(want.length > 40);
  assert.deepEqual(lines(await registry.metrics()), want);
  // Scraped again (each scrape sets the counters from the tallies): the same.
  assert.deepEqual(lines(await registry.metrics()), want);
  assert.equal((await m.items.get()).values.find((v) => v.labels.model === 'vad' && v.labels.version === '1')?.value, 9);
});
