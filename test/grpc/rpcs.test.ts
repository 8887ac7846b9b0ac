// Every RPC of inference.GRPCInferenceService against a real Perch, through a client generated
// at run time from proto/inference.proto: health, metadata, and ModelInfer for every real test
// model (raw and typed contents) equal to a direct onnxruntime session.run, plus coded errors.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { rawRun, releaseRawSessions, REAL_MODEL_CASES } from '../helpers/models.js';
import { TempRepository } from '../helpers/repository.js';
import { startRuntime, type TestRuntime } from '../helpers/runtime.js';
import { RUNTIME_VERSION } from '../../runtime/base/version.js';
import type { Tensor } from '../../runtime/tensor/tensor.js';
import { GRPC_STATUS } from '../../runtime/api/grpc/status.js';
import { answerTensors, InferenceClient, rawRequest, typedRequest, type InferAnswer } from './client.js';

function assertSame(got: Tensor[], want: Tensor[], how: string): void {
  assert.deepEqual(got.map((t) => t.name).sort(), want.map((t) => t.name).sort(), `${how}: outputs`);
  for (const w of want) {
    const g = got.find((t) => t.name === w.name) as Tensor;
    assert.deepEqual(g.shape, w.shape, `${how}: ${w.name} shape`);
    assert.deepEqual(Array.from(g.data as Float32Array), Array.from(w.data as Float32Array), `${how}: ${w.name} data`);
  }
}

describe('gRPC: every RPC against a real Perch', () => {
  let repo: TempRepository;
  let rt: TestRuntime;
  let client: InferenceClient;

  before(async () => {
    repo = new TempRepository(Object.fromEntries(REAL_MODEL_CASES.map((c) => [c.name, { versions: { 1: c.file } }])));
    rt = await startRuntime(repo.dir, { server: { grpcPort: 0, maxRequestBytes: 1024 * 1024 } });
    client = new InferenceClient(`127.0.0.1:${rt.runtime.grpc?.port}`);
  });
  after(async () => {
    client.close();
    await rt.stop();
    repo.remove();
    await releaseRawSessions();
  });

  test('ServerLive, ServerReady, ServerMetadata', async () => {
    assert.deepEqual(await client.call('ServerLive', {}), { live: true });
    assert.deepEqual(await client.call('ServerReady', {}), { ready: true });
    const meta = await client.call<{ name: string; version: string; extensions: string[] }>('ServerMetadata', {});
    assert.equal(meta.name, 'perch');
    assert.equal(meta.version, RUNTIME_VERSION);
    assert.ok(meta.extensions.includes('model_repository'));
  });

  test('ModelReady: true for a served model and version, false for unknown ones', async () => {
    assert.deepEqual(await client.call('ModelReady', { name: 'ocr-cls' }), { ready: true });
    assert.deepEqual(await client.call('ModelReady', { name: 'ocr-cls', version: '1' }), { ready: true });
    assert.deepEqual(await client.call('ModelReady', { name: 'ocr-cls', version: '2' }), { ready: false });
    assert.deepEqual(await client.call('ModelReady', { name: 'nope' }), { ready: false });
  });

  test('ModelMetadata: platform onnxruntime_onnx, tensors with -1 for free axes', async () => {
    const m = await client.call<{ name: string; versions: string[]; platform: string; inputs: Array<{ name: string; datatype: string; shape: string[] }>; outputs: unknown[] }>('ModelMetadata', { name: 'ocr-cls' });
    assert.equal(m.name, 'ocr-cls');
    assert.deepEqual(m.versions, ['1']);
    assert.equal(m.platform, 'onnxruntime_onnx');
    const http = await (await fetch(`${rt.baseUrl}/v2/models/ocr-cls`)).json() as { inputs: Array<{ name: string; datatype: string; shape: number[] }> };
    assert.deepEqual(m.inputs, http.inputs.map((t) => ({ ...t, shape: t.shape.map(String) })), 'the same tensors as over HTTP');
    assert.equal(m.inputs[0]?.shape[0], '-1');
    assert.equal(m.outputs.length, 1);
    const f = await client.failure('ModelMetadata', { name: 'nope' });
    assert.equal(f.code, GRPC_STATUS.NOT_FOUND);
    assert.equal(f.perchCode, 'PERCH_ERR_MODEL_NOT_FOUND');
  });

  for (const c of REAL_MODEL_CASES) {
    test(`ModelInfer ${c.name}: raw and typed contents equal a direct session.run`, async (t) => {
      const inputs = c.inputs(7);
      const want = await rawRun(c.file, inputs);
      const raw = await client.call<InferAnswer>('ModelInfer', rawRequest(c.name, inputs, { id: 'r1' }));
      assert.equal(raw.model_name, c.name);
      assert.equal(raw.model_version, '1');
      assert.equal(raw.id, 'r1');
      assertSame(answerTensors(raw), want, 'raw_input_contents');
      // Typed FP32 contents of the big image inputs are over this runtime's 1 MiB message limit.
      const typedSize = inputs.reduce((n, x) => n + (x.data as ArrayBufferView).byteLength, 0);
      if (typedSize > 512 * 1024) return t.diagnostic('typed contents: over the test message limit, sent raw only');
      const typed = await client.call<InferAnswer>('ModelInfer', typedRequest(c.name, inputs));
      assertSame(answerTensors(typed), want, 'typed contents');
    });
  }

  test('ModelInfer asks for one output, and request parameters are read (cache off)', async () => {
    const inputs = REAL_MODEL_CASES.find((c) => c.name === 'silero-vad')!.inputs(3);
    const a = await client.call<InferAnswer>('ModelInfer', rawRequest('silero-vad', inputs, {
      outputs: [{ name: 'stateN' }],
      parameters: { cache: { bool_param: false }, priority: { int64_param: '1' } },
    }));
    assert.deepEqual(a.outputs.map((o) => o.name), ['stateN']);
    assert.equal(a.parameters.cached?.bool_param, false);
  });

  test('bad requests get coded statuses and the server goes on serving', async () => {
    const cls = REAL_MODEL_CASES.find((c) => c.name === 'silero-vad')!;
    const inputs = cls.inputs(1);
    const cases: Array<[string, Record<string, unknown>, number, string]> = [
      ['unknown model', rawRequest('nope', inputs), GRPC_STATUS.NOT_FOUND, 'PERCH_ERR_MODEL_NOT_FOUND'],
      ['unknown version', rawRequest('silero-vad', inputs, { model_version: '9' }), GRPC_STATUS.NOT_FOUND, 'PERCH_ERR_VERSION_NOT_FOUND'],
      ['wrong datatype', rawRequest('silero-vad', inputs.map((t) => (t.name === 'input' ? { ...t, datatype: 'INT32' as const } : t))), GRPC_STATUS.INVALID_ARGUMENT, 'PERCH_ERR_DATATYPE_MISMATCH'],
      ['bytes do not fit the shape', { ...rawRequest('silero-vad', inputs), raw_input_contents: [Buffer.alloc(3), Buffer.alloc(8), Buffer.alloc(8)] }, GRPC_STATUS.INVALID_ARGUMENT, 'PERCH_ERR_BINARY_SIZE'],
      ['raw entries do not match inputs', { ...rawRequest('silero-vad', inputs), raw_input_contents: [Buffer.alloc(4)] }, GRPC_STATUS.INVALID_ARGUMENT, 'PERCH_ERR_BINARY_SIZE'],
      ['unknown datatype', rawRequest('silero-vad', inputs.map((t) => ({ ...t, datatype: 'FP8' as never }))), GRPC_STATUS.INVALID_ARGUMENT, 'PERCH_ERR_INVALID_MESSAGE'],
      ['no contents', { model_name: 'silero-vad', inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 576] }] }, GRPC_STATUS.INVALID_ARGUMENT, 'PERCH_ERR_INVALID_MESSAGE'],
      ['typed count wrong', { model_name: 'silero-vad', inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 576], contents: { fp32_contents: [1, 2] } }] }, GRPC_STATUS.INVALID_ARGUMENT, 'PERCH_ERR_TENSOR_DATA'],
      ['unknown output', rawRequest('silero-vad', inputs, { outputs: [{ name: 'nope' }] }), GRPC_STATUS.INVALID_ARGUMENT, 'PERCH_ERR_UNKNOWN_OUTPUT'],
      ['bad parameter', rawRequest('silero-vad', inputs, { parameters: { priority: { string_param: 'high' } } }), GRPC_STATUS.INVALID_ARGUMENT, 'PERCH_ERR_INVALID_PARAMETER'],
      ['sequence parameters on a stateless model', rawRequest('silero-vad', inputs, { parameters: { sequence_id: { int64_param: '1' } } }), GRPC_STATUS.INVALID_ARGUMENT, 'PERCH_ERR_INVALID_PARAMETER'],
    ];
    for (const [what, req, code, perchCode] of cases) {
      const f = await client.failure('ModelInfer', req);
      assert.equal(f.code, code, `${what}: ${f.details}`);
      assert.equal(f.perchCode, perchCode, what);
      assert.ok(f.details.startsWith(`${perchCode}: `), `${what}: details carry the code: ${f.details}`);
    }
    const ok = await client.call<InferAnswer>('ModelInfer', rawRequest('silero-vad', inputs));
    assert.equal(ok.outputs.length, 2);
  });

  test('ModelStatistics: the same statistics as GET /v2/models/stats (uint64 as decimal strings)', async () => {
    const http = await (await fetch(`${rt.baseUrl}/v2/models/ocr-cls/stats`)).json() as { model_stats: Array<Record<string, unknown>> };
    const got = await client.call<{ model_stats: Array<Record<string, unknown>> }>('ModelStatistics', { name: 'ocr-cls' });
    const asStrings = (v: unknown): unknown => typeof v === 'number' ? String(v) : Array.isArray(v) ? v.map(asStrings) : v && typeof v === 'object' ? Object.fromEntries(Object.entries(v).map(([k, x]) => [k, asStrings(x)])) : v;
    assert.deepEqual(got.model_stats, asStrings(http.model_stats));
    assert.ok(Number((http.model_stats[0] as { execution_count: number }).execution_count) > 0, 'the infers above ran');
    const all = await client.call<{ model_stats: Array<{ name: string }> }>('ModelStatistics', {});
    assert.deepEqual(all.model_stats.map((s) => s.name), REAL_MODEL_CASES.map((c) => c.name).sort());
    const f = await client.failure('ModelStatistics', { name: 'ocr-cls', version: '9' });
    assert.equal(f.code, GRPC_STATUS.NOT_FOUND);
    assert.equal(f.perchCode, 'PERCH_ERR_VERSION_NOT_FOUND');
  });

  test('a message over server.maxRequestBytes is refused RESOURCE_EXHAUSTED', async () => {
    const big = rawRequest('ocr-cls', [{ name: 'x', datatype: 'FP32', shape: [12, 3, 48, 192], data: new Float32Array(12 * 3 * 48 * 192) }]);
    const f = await client.failure('ModelInfer', big);
    assert.equal(f.code, GRPC_STATUS.RESOURCE_EXHAUSTED, f.details);
    assert.deepEqual(await client.call('ServerLive', {}), { live: true });
  });
});

describe('gRPC: the API token', () => {
  let repo: TempRepository;
  let rt: TestRuntime;
  const token = 'grpc-test-token-1';

  before(async () => {
    repo = new TempRepository({ 'ocr-cls': { versions: { 1: REAL_MODEL_CASES.find((c) => c.name === 'ocr-cls')!.file } } });
    rt = await startRuntime(repo.dir, { server: { grpcPort: 0, apiToken: token } });
  });
  after(async () => {
    await rt.stop();
    repo.remove();
  });

  test('every RPC but ServerLive/ServerReady needs authorization: Bearer', async () => {
    const address = `127.0.0.1:${rt.runtime.grpc?.port}`;
    const none = new InferenceClient(address);
    const wrong = new InferenceClient(address, 'not-the-token');
    const right = new InferenceClient(address, token);
    const lower = new InferenceClient(address, token, {}, 'bearer');
    const upper = new InferenceClient(address, token, {}, 'BEARER');
    try {
      assert.deepEqual(await none.call('ServerLive', {}), { live: true });
      assert.deepEqual(await none.call('ServerReady', {}), { ready: true });
      for (const c of [none, wrong]) {
        for (const [method, req] of [['ServerMetadata', {}], ['ModelReady', { name: 'ocr-cls' }], ['ModelMetadata', { name: 'ocr-cls' }], ['ModelStatistics', {}], ['ModelInfer', rawRequest('ocr-cls', [])]] as const) {
          const f = await c.failure(method, req);
          assert.equal(f.code, GRPC_STATUS.UNAUTHENTICATED, method);
          assert.equal(f.perchCode, 'PERCH_ERR_UNAUTHORIZED', method);
        }
        const s = c.stream();
        const status = await new Promise<{ code: number }>((resolve) => {
          s.on('error', () => undefined);
          s.on('status', resolve);
          s.on('data', () => undefined);
        });
        assert.equal(status.code, GRPC_STATUS.UNAUTHENTICATED);
      }
      assert.deepEqual(await right.call('ModelReady', { name: 'ocr-cls' }), { ready: true });
      // RFC 9110 section 11.1: the scheme is case-insensitive (`bearer <token>` was refused).
      for (const c of [lower, upper]) assert.deepEqual(await c.call('ModelReady', { name: 'ocr-cls' }), { ready: true });
    } finally {
      for (const c of [none, wrong, right, lower, upper]) c.close();
    }
  });
});
