// The model repository extension (POST /v2/repository/...) while a gRPC client infers: a load
// swaps a new version in with no failed request; an unload stops the model (requests queued
// before it finish, later ones get NOT_FOUND / PERCH_ERR_MODEL_NOT_FOUND, and UNAVAILABLE /
// PERCH_ERR_MODEL_NOT_READY while it loads again, nothing else); a load brings it back. Every answer equals a direct session.run.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { clsInput, rawRun, releaseRawSessions } from '../helpers/models.js';
import { MODEL_FILES } from '../helpers/paths.js';
import { TempRepository } from '../helpers/repository.js';
import { startRuntime } from '../helpers/runtime.js';
import { waitFor } from '../helpers/wait.js';
import { GRPC_STATUS } from '../../runtime/api/grpc/status.js';
import { answerTensors, InferenceClient, rawRequest, type InferAnswer } from './client.js';

test('load, unload and load again over HTTP while gRPC clients infer', async () => {
  const repo = new TempRepository({ cls: { versions: { 1: MODEL_FILES.ocrCls }, config: { maxBatchSize: 8 } } });
  const rt = await startRuntime(repo.dir, { server: { grpcPort: 0 } });
  const client = new InferenceClient(`127.0.0.1:${rt.runtime.grpc?.port}`);
  const input = clsInput(11);
  const want = Array.from((await rawRun(MODEL_FILES.ocrCls, input))[0]!.data as Float32Array);
  const versions = new Set<string>();
  const wrong: string[] = [];
  const refusals = new Map<string, number>();
  let answered = 0;
  let refused = 0;
  let stop = false;
  const loop = async (): Promise<void> => {
    while (!stop) {
      try {
        const a = await client.call<InferAnswer>('ModelInfer', rawRequest('cls', input));
        versions.add(a.model_version);
        if (JSON.stringify(Array.from(answerTensors(a)[0]!.data as Float32Array)) !== JSON.stringify(want)) wrong.push(a.model_version);
        answered++;
      } catch (err) {
        const e = err as { code: number; metadata: { get(k: string): unknown[] } };
        const key = `${e.code} ${String(e.metadata.get('perch-error-code')[0])}`;
        refusals.set(key, (refusals.get(key) ?? 0) + 1);
        refused++;
      }
    }
  };
  const post = async (path: string): Promise<number> => (await fetch(`${rt.baseUrl}/v2/repository${path}`, { method: 'POST' })).status;
  const loops = [loop(), loop(), loop()];
  try {
    await waitFor(() => answered > 5, 20_000, 'traffic on version 1');
    repo.addVersion('cls', 2, MODEL_FILES.ocrCls);
    assert.equal(await post('/models/cls/load'), 200);
    let mark = answered;
    await waitFor(() => versions.has('2') && answered > mark + 5, 20_000, 'traffic on version 2');
    assert.equal(refused, 0, 'a swap fails no request');

    assert.equal(await post('/models/cls/unload'), 200);
    mark = refused;
    await waitFor(() => refused > mark + 5, 20_000, 'requests refused after the unload');
    assert.deepEqual(await client.call('ModelReady', { name: 'cls' }), { ready: false });
    const index = await (await fetch(`${rt.baseUrl}/v2/repository/index`, { method: 'POST' })).json() as Array<{ name: string; state: string }>;
    assert.deepEqual(index, [{ name: 'cls', state: 'UNAVAILABLE', reason: 'not loaded' }]);

    assert.equal(await post('/models/cls/load'), 200);
    mark = answered;
    await waitFor(() => answered > mark + 5, 20_000, 'traffic after loading again');
    assert.deepEqual(await client.call('ModelReady', { name: 'cls' }), { ready: true });
  } finally {
    stop = true;
    await Promise.all(loops);
    client.close();
    await rt.stop();
    repo.remove();
    await releaseRawSessions();
  }
  assert.deepEqual(wrong, [], 'every answer equals session.run');
  // Unloaded: NOT_FOUND; while it loads again: UNAVAILABLE (not ready). Nothing else.
  const allowed = [`${GRPC_STATUS.NOT_FOUND} PERCH_ERR_MODEL_NOT_FOUND`, `${GRPC_STATUS.UNAVAILABLE} PERCH_ERR_MODEL_NOT_READY`];
  assert.ok(refusals.has(allowed[0]!), 'requests after the unload were refused');
  assert.deepEqual([...refusals.keys()].filter((k) => !allowed.includes(k)), [], 'the only refusals are the unloaded or loading model');
});
