// The HTTP API against the Open Inference Protocol's REST schemas (test/helpers/oip-schemas.ts,
// written from the protocol's OpenAPI document): every endpoint's success body, inference
// answers (JSON and binary), and error bodies of every kind of failure; `platform` is
// Triton's `onnxruntime_onnx` (docs/grpc.md "platform"). The schemas are checked to reject
// non-conforming bodies too, so the test can fail.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { jsonTensor } from '../helpers/clients.js';
import { clsInput, vadInputs } from '../helpers/models.js';
import { MODEL_FILES } from '../helpers/paths.js';
import { TempRepository } from '../helpers/repository.js';
import { startRuntime, type TestRuntime } from '../helpers/runtime.js';
import {
  binaryResponseOutput, conformance, errorResponse, inferenceResponse, liveResponse, modelMetadata, readyResponse, serverMetadata,
} from '../helpers/oip-schemas.js';

describe('HTTP API conforms to the Open Inference Protocol REST schemas', () => {
  let repo: TempRepository;
  let rt: TestRuntime;

  before(async () => {
    repo = new TempRepository({ cls: { versions: { 1: MODEL_FILES.ocrCls } }, vad: { versions: { 1: MODEL_FILES.sileroVad } }, broken: { versions: { 1: Buffer.from('not onnx') } } });
    rt = await startRuntime(repo.dir);
  });
  after(async () => {
    await rt.stop();
    repo.remove();
  });

  const get = async (path: string): Promise<{ status: number; body: unknown }> => {
    const r = await fetch(`${rt.baseUrl}${path}`);
    return { status: r.status, body: await r.json() };
  };
  const post = async (path: string, body: unknown): Promise<{ status: number; body: unknown }> => {
    const r = await fetch(`${rt.baseUrl}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: typeof body === 'string' ? body : JSON.stringify(body) });
    return { status: r.status, body: await r.json() };
  };

  test('health, server metadata, model metadata and model ready', async () => {
    const live = await get('/v2/health/live');
    assert.equal(live.status, 200);
    assert.deepEqual(conformance(liveResponse, live.body), []);
    const ready = await get('/v2/health/ready');
    assert.equal(ready.status, 503, 'a broken model: the server is not ready');
    assert.deepEqual(conformance(readyResponse, ready.body), []);
    for (const path of ['/v2', '/v2/']) assert.deepEqual(conformance(serverMetadata, (await get(path)).body), [], path);
    for (const path of ['/v2/models/cls', '/v2/models/cls/versions/1', '/v2/models/vad']) {
      const m = await get(path);
      assert.equal(m.status, 200, path);
      assert.deepEqual(conformance(modelMetadata, m.body), [], path);
      assert.equal((m.body as { platform: string }).platform, 'onnxruntime_onnx');
    }
    assert.equal((await fetch(`${rt.baseUrl}/v2/models/cls/versions/1/ready`)).status, 200);
  });

  test('inference answers: JSON, and binary outputs as the binary extension shapes them', async () => {
    for (const [model, inputs] of [['cls', clsInput(1)], ['vad', vadInputs(1)]] as const) {
      const r = await post(`/v2/models/${model}/infer`, { id: 'q1', inputs: inputs.map(jsonTensor), parameters: { cache: false } });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.deepEqual(conformance(inferenceResponse, r.body), [], model);
      assert.equal((r.body as { id: string }).id, 'q1');
    }
    const bin = await fetch(`${rt.baseUrl}/v2/models/vad/infer`, {
      method: 'POST', body: JSON.stringify({ inputs: vadInputs(2).map(jsonTensor), parameters: { binary_data_output: true } }),
    });
    const raw = Buffer.from(await bin.arrayBuffer());
    const n = Number(bin.headers.get('inference-header-content-length'));
    const header = JSON.parse(raw.subarray(0, n).toString()) as { outputs: unknown[] };
    assert.deepEqual(conformance(inferenceResponse.omit({ outputs: true }), header), []);
    for (const o of header.outputs) assert.deepEqual(conformance(binaryResponseOutput, o), []);
  });

  test('error bodies of every kind carry `error` (and Perch\'s code)', async () => {
    const cases: Array<[string, () => Promise<{ status: number; body: unknown }>, number]> = [
      ['unknown model metadata', () => get('/v2/models/nope'), 404],
      ['unknown version', () => get('/v2/models/cls/versions/7'), 404],
      ['model not ready', () => get('/v2/models/broken'), 503],
      ['unknown model infer', () => post('/v2/models/nope/infer', { inputs: [] }), 404],
      ['malformed JSON', () => post('/v2/models/cls/infer', '{"inputs": ['), 400],
      ['schema violation', () => post('/v2/models/cls/infer', { inputs: 'x' }), 400],
      ['wrong datatype', () => post('/v2/models/cls/infer', { inputs: [{ ...jsonTensor(clsInput(1)[0]!), datatype: 'INT32' }] }), 400],
      ['wrong shape', () => post('/v2/models/cls/infer', { inputs: [{ name: 'x', shape: [1, 2], datatype: 'FP32', data: [1, 2] }] }), 400],
      ['unknown route', () => get('/v2/nothing/here'), 404],
    ];
    for (const [what, call, status] of cases) {
      const r = await call();
      assert.equal(r.status, status, `${what}: ${JSON.stringify(r.body)}`);
      assert.deepEqual(conformance(errorResponse, r.body), [], what);
      assert.match((r.body as { code: string }).code, /^PERCH_ERR_[A-Z_]+$/, what);
    }
  });

  test('the schemas reject bodies that break the protocol', () => {
    assert.notDeepEqual(conformance(serverMetadata, { name: 'perch', version: '1' }), [], 'extensions missing');
    assert.notDeepEqual(conformance(modelMetadata, { name: 'm' }), [], 'platform missing');
    assert.notDeepEqual(conformance(modelMetadata, { name: 'm', platform: 'x', inputs: [{ name: 'a', datatype: 'FP32', shape: ['1'] }] }), [], 'shape of strings');
    assert.notDeepEqual(conformance(inferenceResponse, { model_name: 'm', outputs: [{ name: 'o', shape: [1], datatype: 'FP32' }] }), [], 'output without data');
    assert.notDeepEqual(conformance(inferenceResponse, { outputs: [] }), [], 'model_name missing');
    assert.notDeepEqual(conformance(errorResponse, { code: 'PERCH_ERR_X' }), [], 'error text missing');
  });
});
