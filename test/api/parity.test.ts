// For every real test model (test/helpers/paths.ts): the answer through HTTP (JSON and binary) and WebSocket
// (JSON and binary) equals a direct session.run on the same input, with the session on a worker
// thread (the default) and inline on the main thread (where binary inputs may reach
// onnxruntime as views into the received frame, not copies).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { httpInfer, WsClient } from '../helpers/clients.js';
import { rawRun, releaseRawSessions, REAL_MODEL_CASES } from '../helpers/models.js';
import { TempRepository } from '../helpers/repository.js';
import { startRuntime, type TestRuntime } from '../helpers/runtime.js';
import type { Tensor } from '../../runtime/tensor/tensor.js';

/** JSON carries FP32 as doubles printed from floats: equal after Math.fround. */
function assertSameTensors(got: Tensor[], want: Tensor[], how: string): void {
  assert.equal(got.length, want.length, `${how}: output count`);
  for (const w of want) {
    const g = got.find((t) => t.name === w.name);
    assert.ok(g, `${how}: output ${w.name} missing`);
    assert.deepEqual(g.shape, w.shape, `${how}: ${w.name} shape`);
    assert.equal(g.datatype, w.datatype, `${how}: ${w.name} datatype`);
    assert.deepEqual(Array.from(g.data as Float32Array, Math.fround), Array.from(w.data as Float32Array), `${how}: ${w.name} data`);
  }
}

for (const executor of ['worker', 'inline'] as const) describe(`every shared model answers like a direct session.run (${executor} executor)`, () => {
  let repo: TempRepository;
  let rt: TestRuntime;
  let ws: WsClient;

  before(async () => {
    repo = new TempRepository(Object.fromEntries(REAL_MODEL_CASES.map((c) => [c.name, { versions: { 1: c.file }, config: { session: { executor } } }])));
    rt = await startRuntime(repo.dir);
    ws = await WsClient.connect(rt.wsUrl);
  });
  after(async () => {
    await ws.close();
    await rt.stop();
    repo.remove();
    await releaseRawSessions();
  });

  for (const c of REAL_MODEL_CASES) {
    test(c.name, async () => {
      const inputs = c.inputs(42);
      const want = await rawRun(c.file, inputs);
      const httpJson = await httpInfer(rt.baseUrl, c.name, inputs);
      assert.equal(httpJson.status, 200, JSON.stringify(httpJson.body));
      assertSameTensors(httpJson.outputs, want, 'HTTP JSON');
      const httpBin = await httpInfer(rt.baseUrl, c.name, inputs, { binary: true });
      assert.equal(httpBin.status, 200, JSON.stringify(httpBin.body));
      assertSameTensors(httpBin.outputs, want, 'HTTP binary');
      const wsJson = await ws.infer(c.name, inputs);
      assert.ok(wsJson.ok, JSON.stringify(wsJson.body));
      assertSameTensors(wsJson.outputs, want, 'WebSocket JSON');
      const wsBin = await ws.infer(c.name, inputs, { binary: true });
      assert.ok(wsBin.ok, JSON.stringify(wsBin.body));
      assertSameTensors(wsBin.outputs, want, 'WebSocket binary');
    });
  }
});
