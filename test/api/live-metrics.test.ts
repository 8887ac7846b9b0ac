// The `metrics` topic: quantiles from cumulative histogram buckets (as Prometheus'
// histogram_quantile), and samples that agree with the requests made, over WebSocket `subscribe`.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { quantileMs } from '../../runtime/live-metrics.js';
import { waitFor, WsClient } from '../helpers/clients.js';
import { clsInput } from '../helpers/models.js';
import { MODEL_FILES } from '../helpers/paths.js';
import { TempRepository } from '../helpers/repository.js';
import { startRuntime } from '../helpers/runtime.js';

describe('metrics topic', () => {
  test('quantileMs interpolates inside the bucket the rank falls in', () => {
    // 10 observations: 4 under 1 ms, 4 more under 2 ms, 2 more under 4 ms.
    const b = new Map([[0.001, 4], [0.002, 8], [0.004, 10], [Infinity, 10]]);
    assert.equal(quantileMs(b, 0.5), 1.25); // rank 5: a quarter into (1 ms, 2 ms]
    assert.equal(quantileMs(b, 0.99), 3.9); // rank 9.9: 95 % into (2 ms, 4 ms]
    assert.equal(quantileMs(new Map([[0.001, 0], [Infinity, 0]]), 0.5), null);
    assert.equal(quantileMs(new Map([[0.001, 0], [Infinity, 3]]), 0.5), 1, 'the +Inf bucket answers its lower bound');
  });

  test('a WebSocket subscriber gets samples that count the items inferred', async () => {
    const repo = new TempRepository({ cls: { versions: { 1: MODEL_FILES.ocrCls } } });
    const rt = await startRuntime(repo.dir);
    const ws = await WsClient.connect(rt.wsUrl);
    try {
      assert.ok((await ws.request({ op: 'subscribe', topics: ['metrics'] })).ok);
      const samples = () => ws.notifications.filter((n) => n.topic === 'metrics').map((n) => n.data as { itemsPerSec: number; intervalMs: number; models: Record<string, { itemsPerSec: number; avgBatch: number; computeP50Ms: number | null }>; queue: Record<string, number> });
      await waitFor(() => samples().length >= 1, 20_000, 'a first sample');
      const from = samples().length;
      for (let i = 0; i < 12; i++) assert.ok((await ws.infer('cls', clsInput(i, 2))).ok);
      // Every item lands in some sample after `from`: items = sum(itemsPerSec * interval).
      await waitFor(() => {
        const items = samples().slice(from - 1).reduce((n, s) => n + (s.models.cls?.itemsPerSec ?? 0) * (s.intervalMs / 1000), 0);
        return Math.round(items) === 24;
      }, 20_000, () => `samples: ${JSON.stringify(samples().slice(-3))}`);
      const busy = samples().find((s) => (s.models.cls?.itemsPerSec ?? 0) > 0);
      assert.ok(busy && busy.models.cls!.avgBatch >= 2 && busy.models.cls!.computeP50Ms !== null);
      assert.deepEqual(busy.queue, { cls: 0 });
    } finally {
      await ws.close();
      await rt.stop();
      repo.remove();
    }
  });
});
