// Scheduling errors (queue full, timeout) and priority order, run against PP-OCR det on a large
// image whose run is provably long; the tests wait for the scheduler's own state (running
// batches, queue depth) instead of sleeping. Each gets its PERCH_ERR_* code (and over HTTP its
// status) and the server goes on serving (docs/protocol.md sections 3-4).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Tensor } from '../../runtime/tensor/tensor.js';
import { httpInfer, waitFor } from '../helpers/clients.js';
import { detInput, batcherOf, LONG_DET_SIZE, settledFlag } from '../helpers/scenarios.js';
import { MODEL_FILES } from '../helpers/paths.js';
import { TempRepository } from '../helpers/repository.js';
import { startRuntime, type TestRuntime } from '../helpers/runtime.js';
import { binaryFrame, binaryParts, metricValue, RecordingWs, scrape } from '../helpers/wire.js';

describe('scheduling errors and priority order (PP-OCR det: one provably long run ahead)', () => {
  let repo: TempRepository;
  let rt: TestRuntime;
  const long = detInput(LONG_DET_SIZE);
  const small = (seed: number): Tensor[] => detInput(32, seed);

  before(async () => {
    repo = new TempRepository({
      // One request per batch, so each queued request is its own run and order is visible.
      det: { versions: { 1: MODEL_FILES.ocrDet }, config: { maxBatchSize: 1 } },
      'det-q': { versions: { 1: MODEL_FILES.ocrDet }, config: { maxBatchSize: 1, batching: { maxQueueSize: 1 } } },
      // A queue bounded by bytes only: one small image (32x32x3 FP32, 12 KiB) fills it.
      'det-b': { versions: { 1: MODEL_FILES.ocrDet }, config: { maxBatchSize: 1, batching: { maxQueueBytes: 4096 } } },
    });
    rt = await startRuntime(repo.dir);
  });
  after(async () => {
    await rt?.stop();
    repo?.remove();
  });

  /** Starts the long run and resolves once it is running (not merely queued). */
  async function startLong(model: string): Promise<{ answer: Promise<Awaited<ReturnType<typeof httpInfer>>>; finished: { readonly done: boolean } }> {
    assert.equal(batcherOf(rt, model).active, 0, 'nothing runs before the long request');
    const answer = httpInfer(rt.baseUrl, model, long, { binary: true });
    const finished = settledFlag(answer);
    await waitFor(() => batcherOf(rt, model).active === 1 || finished.done, 20_000, 'the long run to start');
    assert.equal(finished.done, false, 'the long request is running');
    return { answer, finished };
  }

  test('queue full: 429 PERCH_ERR_QUEUE_FULL over HTTP, ok:false over WebSocket; both keep serving', async () => {
    const ws = await RecordingWs.connect(rt.wsUrl);
    try {
      const a = await startLong('det-q');
      const queued = httpInfer(rt.baseUrl, 'det-q', small(1), { binary: true });
      await waitFor(() => batcherOf(rt, 'det-q').depth === 1, 20_000, 'one request queued');

      const overHttp = await httpInfer(rt.baseUrl, 'det-q', small(2), { binary: true });
      assert.equal(overHttp.status, 429, JSON.stringify(overHttp.body));
      assert.equal(overHttp.body.code, 'PERCH_ERR_QUEUE_FULL');

      const [part] = binaryParts(small(3));
      ws.socket.send(binaryFrame({ id: 'full', op: 'infer', model: 'det-q', inputs: [part!.header] }, [part!.bytes]));
      const overWs = await ws.waitAnswer('full');
      assert.equal(overWs.ok, false);
      assert.equal((overWs.error as { code: string }).code, 'PERCH_ERR_QUEUE_FULL');
      // Both refusals came while the long run still held the only slot and the queue was full.
      assert.equal(a.finished.done, false, 'precondition: the long run was still running');

      assert.equal((await a.answer).status, 200);
      assert.equal((await queued).status, 200);
      ws.socket.send(binaryFrame({ id: 'after', op: 'infer', model: 'det-q', inputs: [part!.header] }, [part!.bytes]));
      assert.equal((await ws.waitAnswer('after')).ok, true, 'the same connection serves again');
      assert.equal((await httpInfer(rt.baseUrl, 'det-q', small(4), { binary: true })).status, 200);
    } finally {
      await ws.close();
    }
  });

  test('queue full under a burst: with one slot busy and maxQueueSize 1, one of five concurrent requests fits', async () => {
    const a = await startLong('det-q');
    const burst = Array.from({ length: 5 }, (_, i) => httpInfer(rt.baseUrl, 'det-q', small(40 + i), { binary: true }));
    const flags = burst.map(settledFlag);
    await waitFor(() => flags.filter((f) => f.done).length === 4 || a.finished.done, 20_000, 'four refusals');
    assert.equal(a.finished.done, false, 'precondition: the burst arrived while the long run was running');
    assert.equal(batcherOf(rt, 'det-q').depth, 1);
    const results = await Promise.all(burst);
    const statuses = results.map((r) => r.status).sort();
    assert.deepEqual(statuses, [200, 429, 429, 429, 429], JSON.stringify(results.map((r) => r.body.code)));
    for (const r of results.filter((x) => x.status === 429)) assert.equal(r.body.code, 'PERCH_ERR_QUEUE_FULL');
    assert.equal((await a.answer).status, 200);
    assert.equal((await httpInfer(rt.baseUrl, 'det-q', small(50), { binary: true })).status, 200);
  });

  test('queue full by bytes (batching.maxQueueBytes): 429 PERCH_ERR_QUEUE_FULL from the headers once the queue holds that many bytes', async () => {
    const a = await startLong('det-b');
    const queued = httpInfer(rt.baseUrl, 'det-b', small(60), { binary: true });
    await waitFor(() => batcherOf(rt, 'det-b').depth === 1, 20_000, 'one request queued');
    assert.equal(batcherOf(rt, 'det-b').bytes, 3 * 32 * 32 * 4);
    const over = await httpInfer(rt.baseUrl, 'det-b', small(61), { binary: true });
    assert.equal(over.status, 429, JSON.stringify(over.body));
    assert.equal(over.body.code, 'PERCH_ERR_QUEUE_FULL');
    assert.match(String(over.body.error), /maxQueueBytes 4096/);
    assert.equal(a.finished.done, false, 'precondition: the long run was still running');
    assert.equal((await a.answer).status, 200);
    assert.equal((await queued).status, 200, 'the request that found the queue below the bound is answered');
    assert.equal(batcherOf(rt, 'det-b').bytes, 0);
    assert.equal((await httpInfer(rt.baseUrl, 'det-b', small(62), { binary: true })).status, 200);
  });

  test('timeout: 504 PERCH_ERR_TIMEOUT while queued, and the request never ran', async () => {
    const ws = await RecordingWs.connect(rt.wsUrl);
    try {
      const labels = { model: 'det', version: '1' };
      const metricsBefore = await scrape(rt.baseUrl);
      const a = await startLong('det');

      // 1000 µs = 1 ms in the queue, behind a run of hundreds of ms.
      const overHttp = await httpInfer(rt.baseUrl, 'det', small(5), { binary: true, parameters: { timeout: 1000 } });
      assert.equal(overHttp.status, 504, JSON.stringify(overHttp.body));
      assert.equal(overHttp.body.code, 'PERCH_ERR_TIMEOUT');

      const [part] = binaryParts(small(6));
      ws.socket.send(binaryFrame({ id: 'late', op: 'infer', model: 'det', inputs: [part!.header], parameters: { timeout: 1000 } }, [part!.bytes]));
      const overWs = await ws.waitAnswer('late');
      assert.equal(overWs.ok, false);
      assert.equal((overWs.error as { code: string }).code, 'PERCH_ERR_TIMEOUT');
      assert.equal(a.finished.done, false, 'precondition: both expired while the long run was running');
      assert.equal(batcherOf(rt, 'det').depth, 0, 'expired requests left the queue');

      assert.equal((await a.answer).status, 200);
      const afterText = await scrape(rt.baseUrl);
      // Only the long request ran: one item, one session run. An expired request that had run
      // anyway would add an item and a run here.
      assert.equal(metricValue(afterText, 'perch_inference_count_total', labels) - metricValue(metricsBefore, 'perch_inference_count_total', labels), 1);
      assert.equal(metricValue(afterText, 'perch_inference_exec_count_total', labels) - metricValue(metricsBefore, 'perch_inference_exec_count_total', labels), 1);
      const timeouts = { ...labels, code: 'PERCH_ERR_TIMEOUT' };
      assert.equal(metricValue(afterText, 'perch_inference_request_failure_total', timeouts) - metricValue(metricsBefore, 'perch_inference_request_failure_total', timeouts), 2);

      ws.socket.send(binaryFrame({ id: 'after', op: 'infer', model: 'det', inputs: [part!.header], parameters: { timeout: 10_000_000 } }, [part!.bytes]));
      assert.equal((await ws.waitAnswer('after')).ok, true, 'the same connection serves again');
      assert.equal((await httpInfer(rt.baseUrl, 'det', small(7), { binary: true })).status, 200);
    } finally {
      await ws.close();
    }
  });

  test('priority: requests queued behind a running batch are served by priority, FIFO within a level', async () => {
    // All answers come over one connection, so their arrival order is the order the runs finished.
    const ws = await RecordingWs.connect(rt.wsUrl);
    try {
      const a = await startLong('det');
      const sent: Array<[string, number | undefined]> = [['p5-a', 5], ['p3', 3], ['default', undefined], ['p5-b', 5], ['p1-a', 1], ['p1-b', 1]];
      sent.forEach(([id, priority], i) => {
        const [part] = binaryParts(small(10 + i));
        const parameters = priority === undefined ? {} : { priority };
        ws.socket.send(binaryFrame({ id, op: 'infer', model: 'det', inputs: [part!.header], parameters }, [part!.bytes]));
      });
      await waitFor(() => batcherOf(rt, 'det').depth === sent.length || a.finished.done, 20_000, 'all queued');
      assert.equal(a.finished.done, false, 'precondition: everything was queued while the long run was running');
      assert.equal(batcherOf(rt, 'det').depth, sent.length);

      await waitFor(() => sent.every(([id]) => ws.answers(id).length === 1), 20_000, 'all answers');
      const order = ws.messages.map((m) => m.header?.id);
      for (const m of ws.messages) assert.equal(m.header?.ok, true, JSON.stringify(m.header));
      // defaultPriority is 5: 'default' sits between p5-a and p5-b, in arrival order.
      assert.deepEqual(order, ['p1-a', 'p1-b', 'p3', 'p5-a', 'default', 'p5-b']);
      assert.equal((await a.answer).status, 200);
    } finally {
      await ws.close();
    }
  });
});
