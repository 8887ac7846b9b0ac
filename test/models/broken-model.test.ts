// A repository with broken models beside a good one (issue 2, model repository): the server
// starts, the good model serves, each broken one is reported not ready with its reason and its
// PERCH_ERR_* code (readiness 503, inference 503 PERCH_ERR_MODEL_NOT_READY, the repository
// index), and /v2/health/ready says the repository is not fully served.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { httpInfer } from '../helpers/clients.js';
import { clsInput, rng } from '../helpers/models.js';
import { MODEL_FILES } from '../helpers/paths.js';
import { TempRepository } from '../helpers/repository.js';
import { startRuntime, type TestRuntime } from '../helpers/runtime.js';
import { binaryFrame, binaryParts, rawRequest, RecordingWs } from '../helpers/wire.js';

function randomBytes(n: number, seed: number): Buffer {
  const r = rng(seed);
  return Buffer.from(Array.from({ length: n }, () => Math.floor(r() * 256)));
}

/** model.json with five bad paths at once: every one must be in the one error. */
const BAD_CONFIG = {
  maxBatchSize: -1,
  batching: { maxQueueSize: 0, bogus: 1 },
  session: { executor: 'gpu' },
  inputs: [{ name: 'x', datatype: 'FLOAT', dims: [-1, 3, 48, 192] }],
  extraKey: true,
};
const BAD_PATHS = ['maxBatchSize', 'batching.maxQueueSize', 'batching.bogus', 'session.executor', 'inputs.0.datatype', 'extraKey'];

interface Broken {
  name: string;
  /** The code the failure carries in the repository index. */
  code: string;
  /** Text the reason must contain. */
  reason: RegExp;
}

const BROKEN: Broken[] = [
  { name: 'corrupt', code: 'PERCH_ERR_MODEL_LOAD_FAILED', reason: /corrupt[/\\]1[/\\]model\.onnx/ },
  { name: 'bad-json', code: 'PERCH_ERR_MODEL_CONFIG_INVALID', reason: /model\.json is invalid/ },
  { name: 'not-json', code: 'PERCH_ERR_MODEL_CONFIG_INVALID', reason: /model\.json is not valid JSON/ },
  { name: 'mismatch', code: 'PERCH_ERR_MODEL_CONFIG_MISMATCH', reason: /input 'x' is FP32 in the ONNX file, model\.json says INT64/ },
];

describe('a repository with broken models', () => {
  let repo: TempRepository;
  let rt: TestRuntime;

  before(async () => {
    repo = new TempRepository({
      good: { versions: { 1: MODEL_FILES.ocrCls } },
      corrupt: { versions: { 1: randomBytes(64 * 1024, 1) } },
      'bad-json': { versions: { 1: MODEL_FILES.ocrCls }, config: BAD_CONFIG },
      'not-json': { versions: { 1: MODEL_FILES.ocrCls }, config: '{"maxBatchSize": 8,' },
      mismatch: { versions: { 1: MODEL_FILES.ocrCls }, config: { inputs: [{ name: 'x', datatype: 'INT64', dims: [-1, 3, 48, 192] }] } },
    });
    rt = await startRuntime(repo.dir); // starts although four of five models fail
  });
  after(async () => {
    await rt?.stop();
    repo?.remove();
  });

  test('the good model is ready and serves', async () => {
    assert.equal((await rawRequest(rt.baseUrl, 'GET', '/v2/models/good/ready')).status, 200);
    const res = await httpInfer(rt.baseUrl, 'good', clsInput(1));
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.deepEqual(res.outputs[0]?.shape, [1, 2]);
  });

  for (const b of BROKEN) {
    test(`${b.name}: not ready (503), inference 503 PERCH_ERR_MODEL_NOT_READY with the reason`, async () => {
      const ready = await rawRequest(rt.baseUrl, 'GET', `/v2/models/${b.name}/ready`);
      assert.equal(ready.status, 503, ready.text);
      assert.equal(ready.json?.code, 'PERCH_ERR_MODEL_NOT_READY');
      const res = await httpInfer(rt.baseUrl, b.name, clsInput(2));
      assert.equal(res.status, 503, JSON.stringify(res.body));
      assert.equal(res.body.code, 'PERCH_ERR_MODEL_NOT_READY');
      assert.match(res.body.error as string, b.reason);
    });
  }

  test('the invalid model.json reports every bad path in one error', async () => {
    const res = await httpInfer(rt.baseUrl, 'bad-json', clsInput(3));
    const message = res.body.error as string;
    for (const path of BAD_PATHS) assert.ok(message.includes(`- ${path}:`), `'${path}' in: ${message}`);
    assert.match(message, /extraKey/);
    assert.match(message, /bogus/);
  });

  test('over WebSocket too: ok:false PERCH_ERR_MODEL_NOT_READY, and the good model serves on the same connection', async () => {
    const ws = await RecordingWs.connect(rt.wsUrl);
    try {
      const [part] = binaryParts(clsInput(4));
      for (const b of BROKEN) {
        ws.socket.send(binaryFrame({ id: b.name, op: 'infer', model: b.name, inputs: [part!.header] }, [part!.bytes]));
        const a = await ws.waitAnswer(b.name);
        assert.equal(a.ok, false);
        const error = a.error as { code: string; message: string };
        assert.equal(error.code, 'PERCH_ERR_MODEL_NOT_READY');
        assert.match(error.message, b.reason);
      }
      ws.socket.send(binaryFrame({ id: 'good', op: 'infer', model: 'good', inputs: [part!.header] }, [part!.bytes]));
      assert.equal((await ws.waitAnswer('good')).ok, true);

      ws.socket.send(JSON.stringify({ id: 'status', op: 'status' }));
      const status = (await ws.waitAnswer('status')).status as { models: Array<{ name: string; ready: boolean }> };
      const readiness = Object.fromEntries(status.models.map((m) => [m.name, m.ready]));
      assert.deepEqual(readiness, { good: true, corrupt: false, 'bad-json': false, 'not-json': false, mismatch: false });
    } finally {
      await ws.close();
    }
  });

  test('/v2/health/ready is 503 while /v2/health/live is 200', async () => {
    const ready = await rawRequest(rt.baseUrl, 'GET', '/v2/health/ready');
    assert.equal(ready.status, 503);
    assert.deepEqual(ready.json, { ready: false });
    assert.equal((await rawRequest(rt.baseUrl, 'GET', '/v2/health/live')).status, 200);
  });

  test('POST /v2/repository/index shows each reason with its code', async () => {
    const res = await rawRequest(rt.baseUrl, 'POST', '/v2/repository/index');
    assert.equal(res.status, 200);
    const rows = JSON.parse(res.text) as Array<{ name: string; version?: string; state: string; reason: string; code?: string }>;
    const good = rows.filter((r) => r.name === 'good');
    assert.deepEqual(good, [{ name: 'good', version: '1', state: 'READY', reason: '' }]);
    for (const b of BROKEN) {
      const mine = rows.filter((r) => r.name === b.name);
      assert.equal(mine.length, 1, `one row for ${b.name}: ${JSON.stringify(mine)}`);
      const row = mine[0]!;
      assert.equal(row.state, 'UNAVAILABLE');
      assert.equal(row.code, b.code, JSON.stringify(row));
      assert.match(row.reason, b.reason);
    }
    // A failed version is reported with its version; a failed model.json concerns the whole model.
    assert.equal(rows.find((r) => r.name === 'corrupt')?.version, '1');
    assert.equal(rows.find((r) => r.name === 'mismatch')?.version, '1');
    assert.equal(rows.find((r) => r.name === 'bad-json')?.version, undefined);
  });
});
