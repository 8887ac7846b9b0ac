// The event loop stays responsive while a batch runs (issue 2, scheduler): sessions run on a
// worker thread, so while PP-OCR det works on a large image for hundreds of milliseconds, the
// health endpoint and the WebSocket status op still answer. The assertions are about order
// (the health answer arrives while the batch is still running, before the inference answer),
// not about wall-clock thresholds.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { httpInfer, waitFor } from '../helpers/clients.js';
import { MODEL_FILES } from '../helpers/paths.js';
import { TempRepository } from '../helpers/repository.js';
import { startRuntime, type TestRuntime } from '../helpers/runtime.js';
import { batcherOf, detInput, LONG_DET_SIZE, settledFlag } from '../helpers/scenarios.js';
import { metricValue, RecordingWs, scrape } from '../helpers/wire.js';

describe('responsive during a long batch', () => {
  let repo: TempRepository;
  let rt: TestRuntime;

  before(async () => {
    repo = new TempRepository({ det: { versions: { 1: MODEL_FILES.ocrDet }, config: { maxBatchSize: 1 } } });
    rt = await startRuntime(repo.dir);
    // The first run of a session pays onnxruntime's lazy set-up; keep it out of the measurement.
    assert.equal((await httpInfer(rt.baseUrl, 'det', detInput(64), { binary: true })).status, 200);
  });
  after(async () => {
    await rt?.stop();
    repo?.remove();
  });

  test('health and status answer while PP-OCR det runs, before its answer', async (t) => {
    const computeBefore = metricValue(await scrape(rt.baseUrl), 'perch_compute_duration_seconds_sum', { model: 'det' });
    const events: string[] = [];
    const started = performance.now();
    const inference = httpInfer(rt.baseUrl, 'det', detInput(LONG_DET_SIZE), { binary: true }).then((r) => {
      events.push('inference');
      return { ...r, ms: performance.now() - started };
    });
    const finished = settledFlag(inference);
    await waitFor(() => batcherOf(rt, 'det').active === 1 || finished.done, 20_000, 'the batch to start');
    assert.equal(finished.done, false, 'the batch is running');

    // Health checks one after another for as long as the batch runs: each is a full round trip
    // through the event loop the batch would block if it ran on it.
    let during = 0;
    const ws = await RecordingWs.connect(rt.wsUrl);
    try {
      ws.socket.send(JSON.stringify({ id: 'status', op: 'status' }));
      const status = await ws.waitAnswer('status');
      events.push('status');
      assert.equal(status.ok, true);
      do {
        const res = await fetch(`${rt.baseUrl}/v2/health/live`);
        assert.equal(res.status, 200);
        assert.deepEqual(await res.json(), { live: true });
        events.push('health');
        if (batcherOf(rt, 'det').active === 1) during++;
      } while (!finished.done && during < 5);
    } finally {
      await ws.close();
    }

    const result = await inference;
    assert.equal(result.status, 200, JSON.stringify(result.body));
    assert.deepEqual(result.outputs[0]?.shape, [1, 1, LONG_DET_SIZE, LONG_DET_SIZE]);
    assert.equal(events[0], 'status', `order: ${events.join(', ')}`);
    assert.equal(events[1], 'health', `order: ${events.join(', ')}`);
    assert.ok(events.indexOf('health') < events.indexOf('inference'), `order: ${events.join(', ')}`);
    assert.ok(during >= 1, 'at least one health answer came while the batch was still running');
    // For the report: how long the batch took, and how many health round trips fit in it.
    const compute = metricValue(await scrape(rt.baseUrl), 'perch_compute_duration_seconds_sum', { model: 'det' }) - computeBefore;
    t.diagnostic(`inference took ${result.ms.toFixed(0)} ms (session run ${(compute * 1000).toFixed(0)} ms); ${during} health answers while it ran`);
  });
});
