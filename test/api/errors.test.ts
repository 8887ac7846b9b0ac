// Every way a request can be wrong gets its PERCH_ERR_* code (and over HTTP its status), and the
// server goes on serving: a normal request on the same server, and over WebSocket on the same
// connection, still succeeds afterwards (docs/protocol.md sections 3-4). Scheduling errors (queue full,
// timeout) and priority order are in scheduling-errors.test.ts.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ERROR_CODES, type ErrorCode } from '../../runtime/base/errors.js';
import { httpInfer, jsonTensor } from '../helpers/clients.js';
import { vadModelJson } from '../helpers/scenarios.js';
import { vadInputs } from '../helpers/models.js';
import { MODEL_FILES } from '../helpers/paths.js';
import { TempRepository } from '../helpers/repository.js';
import { startRuntime, type TestRuntime } from '../helpers/runtime.js';
import { binaryBody, binaryFrame, binaryParts, rawRequest, RecordingWs } from '../helpers/wire.js';

const KiB = 1024;
const LIMIT = 64 * KiB;

/** The logical request a case mutates; sent as an HTTP body and as a WebSocket infer message. */
interface LogicalRequest {
  model: string;
  version?: string | number;
  inputs: Array<Record<string, unknown>>;
  outputs?: Array<Record<string, unknown>>;
  parameters?: Record<string, unknown>;
}

interface HttpSend {
  method?: string;
  path: string;
  body?: string | Buffer | Buffer[];
  headers?: Record<string, string>;
}

interface WsSend {
  frame: string | Buffer;
  /** The id the answer must carry: null when the frame's id cannot be read. */
  answerId: string | null;
}

interface Case {
  name: string;
  code: ErrorCode;
  http?: () => HttpSend;
  ws?: (id: string) => WsSend;
}

function vadWire(seed = 1, batch = 1): Array<Record<string, unknown>> {
  return vadInputs(seed, batch).map((t) => jsonTensor(t) as unknown as Record<string, unknown>);
}

function zeros(name: string, shape: number[], datatype = 'FP32'): Record<string, unknown> {
  return { name, shape, datatype, data: new Array(shape.reduce((a, b) => a * b, 1)).fill(0) };
}

function inferPath(model: string, version?: string | number): string {
  return `/v2/models/${encodeURIComponent(model)}${version !== undefined ? `/versions/${version}` : ''}/infer`;
}

/** A case that is the valid VAD request with one thing changed, over both transports. */
function inferCase(name: string, code: ErrorCode, mutate: (r: LogicalRequest) => void): Case {
  const make = (): LogicalRequest => {
    const r: LogicalRequest = { model: 'vad', inputs: vadWire() };
    mutate(r);
    return r;
  };
  return {
    name,
    code,
    http: () => {
      const r = make();
      const body = { inputs: r.inputs, ...(r.outputs ? { outputs: r.outputs } : {}), ...(r.parameters ? { parameters: r.parameters } : {}) };
      return { path: inferPath(r.model, r.version), body: JSON.stringify(body), headers: { 'content-type': 'application/json' } };
    },
    ws: (id) => ({ frame: JSON.stringify({ id, op: 'infer', ...make() }), answerId: id }),
  };
}

/** Binary variants: `lie` changes the header entries, the bytes or the declared lengths. */
function binaryCase(
  name: string,
  lie: (parts: { headers: Array<Record<string, unknown>>; bytes: Uint8Array[] }) => { extra?: Uint8Array; headerLengthDelta?: number; readableId?: boolean },
): Case {
  const build = () => {
    const parts = binaryParts(vadInputs(3));
    const state = { headers: parts.map((p) => structuredClone(p.header)), bytes: parts.map((p) => p.bytes) };
    const how = lie(state);
    const chunks = how.extra ? [...state.bytes, how.extra] : state.bytes;
    return { state, how, chunks };
  };
  return {
    name,
    code: 'PERCH_ERR_BINARY_SIZE',
    http: () => {
      const { state, how, chunks } = build();
      const { body, headerLength } = binaryBody({ inputs: state.headers }, chunks);
      return {
        path: inferPath('vad'),
        body,
        headers: { 'content-type': 'application/octet-stream', 'inference-header-content-length': String(headerLength + (how.headerLengthDelta ?? 0)) },
      };
    },
    ws: (id) => {
      const { state, how, chunks } = build();
      const header = { id, op: 'infer', model: 'vad', inputs: state.headers };
      const json = Buffer.byteLength(JSON.stringify(header));
      const frame = binaryFrame(header, chunks, how.headerLengthDelta ? json + how.headerLengthDelta : undefined);
      return { frame, answerId: how.readableId === false ? null : id };
    },
  };
}

const CASES: Case[] = [
  inferCase('unknown model', 'PERCH_ERR_MODEL_NOT_FOUND', (r) => (r.model = 'no-such-model')),
  inferCase('unknown version', 'PERCH_ERR_VERSION_NOT_FOUND', (r) => (r.version = 7)),
  inferCase('version that is not a number', 'PERCH_ERR_VERSION_NOT_FOUND', (r) => (r.version = 'latest')),
  inferCase('wrong datatype', 'PERCH_ERR_DATATYPE_MISMATCH', (r) => (r.inputs[0] = { ...r.inputs[0], datatype: 'FP64' })),
  inferCase('wrong shape', 'PERCH_ERR_SHAPE_MISMATCH', (r) => (r.inputs[0] = zeros('input', [1, 575]))),
  inferCase('wrong rank', 'PERCH_ERR_SHAPE_MISMATCH', (r) => (r.inputs[0] = zeros('input', [576]))),
  inferCase('batch axes that disagree', 'PERCH_ERR_SHAPE_MISMATCH', (r) => (r.inputs[1] = zeros('state', [2, 2, 128]))),
  inferCase('missing input', 'PERCH_ERR_MISSING_INPUT', (r) => (r.inputs = r.inputs.filter((t) => t.name !== 'sr'))),
  inferCase('unknown input', 'PERCH_ERR_UNKNOWN_INPUT', (r) => r.inputs.push(zeros('bogus', [1]))),
  inferCase('unknown output', 'PERCH_ERR_UNKNOWN_OUTPUT', (r) => (r.outputs = [{ name: 'stateN' }, { name: 'no-such-output' }])),
  inferCase('data shorter than the shape', 'PERCH_ERR_TENSOR_DATA', (r) => (r.inputs[0] = { ...zeros('input', [1, 576]), data: new Array(575).fill(0) })),
  inferCase('data element of the wrong type', 'PERCH_ERR_TENSOR_DATA', (r) => (r.inputs[2] = { name: 'sr', shape: [], datatype: 'INT64', data: ['16k'] })),
  inferCase('data that is not an array', 'PERCH_ERR_TENSOR_DATA', (r) => (r.inputs[2] = { name: 'sr', shape: [], datatype: 'INT64', data: 16000 })),
  // vad is served with maxBatchSize 2 here.
  inferCase('batch over maxBatchSize', 'PERCH_ERR_BATCH_TOO_LARGE', (r) => (r.inputs = [zeros('input', [3, 576]), zeros('state', [2, 3, 128]), zeros('sr', [], 'INT64')])),
  inferCase('priority of the wrong type', 'PERCH_ERR_INVALID_PARAMETER', (r) => (r.parameters = { priority: 'high' })),
  inferCase('priority 0', 'PERCH_ERR_INVALID_PARAMETER', (r) => (r.parameters = { priority: 0 })),
  inferCase('priority that is not an integer', 'PERCH_ERR_INVALID_PARAMETER', (r) => (r.parameters = { priority: 1.5 })),
  inferCase('priority above priorityLevels', 'PERCH_ERR_INVALID_PARAMETER', (r) => (r.parameters = { priority: 11 })),
  inferCase('timeout of the wrong type', 'PERCH_ERR_INVALID_PARAMETER', (r) => (r.parameters = { timeout: '1000' })),
  inferCase('negative timeout', 'PERCH_ERR_INVALID_PARAMETER', (r) => (r.parameters = { timeout: -1 })),
  inferCase('fractional timeout', 'PERCH_ERR_INVALID_PARAMETER', (r) => (r.parameters = { timeout: 2.5 })),
  inferCase('no inputs at all', 'PERCH_ERR_INVALID_MESSAGE', (r) => (r.inputs = [])),
  inferCase('tensor with neither data nor binary_data_size', 'PERCH_ERR_INVALID_MESSAGE', (r) => (r.inputs[2] = { name: 'sr', shape: [], datatype: 'INT64' })),
  {
    name: 'malformed JSON',
    code: 'PERCH_ERR_MALFORMED_JSON',
    http: () => ({ path: inferPath('vad'), body: '{"inputs": [{"name": "input",', headers: { 'content-type': 'application/json' } }),
    ws: () => ({ frame: '{"id": "lost", "op": "infer", ', answerId: null }),
  },
  {
    name: 'malformed JSON header in a binary frame',
    code: 'PERCH_ERR_MALFORMED_JSON',
    http: () => ({ path: inferPath('vad'), body: Buffer.from('{nope}\u0000\u0001'), headers: { 'inference-header-content-length': '6' } }),
    ws: () => {
      const frame = Buffer.concat([Buffer.alloc(4), Buffer.from('{nope}'), Buffer.from([0, 1, 2, 3])]);
      frame.writeUInt32LE(6, 0);
      return { frame, answerId: null };
    },
  },
  {
    name: 'unknown op',
    code: 'PERCH_ERR_UNKNOWN_OP',
    ws: (id) => ({ frame: JSON.stringify({ id, op: 'explode', model: 'vad' }), answerId: id }),
  },
  {
    name: 'message without an op',
    code: 'PERCH_ERR_INVALID_MESSAGE',
    ws: (id) => ({ frame: JSON.stringify({ id, model: 'vad', inputs: vadWire() }), answerId: id }),
  },
  {
    name: 'JSON that is not an object',
    code: 'PERCH_ERR_INVALID_MESSAGE',
    http: () => ({ path: inferPath('vad'), body: '[1, 2, 3]', headers: { 'content-type': 'application/json' } }),
    ws: () => ({ frame: '"just a string"', answerId: null }),
  },
  binaryCase('binary_data_size sum below the bytes sent', () => ({ extra: new Uint8Array([1, 2, 3]) })),
  binaryCase('binary_data_size sum above the bytes sent', (s) => {
    (s.headers[0]!.parameters as Record<string, number>).binary_data_size = 576 * 4 + 8;
    return {};
  }),
  binaryCase('binary_data_size that fits the bytes but not the shape', (s) => {
    (s.headers[0]!.parameters as Record<string, number>).binary_data_size = 575 * 4;
    s.bytes[0] = (s.bytes[0] as Uint8Array).subarray(0, 575 * 4);
    return {};
  }),
  binaryCase('header length past the end', () => ({ headerLengthDelta: 1_000_000, readableId: false })),
  binaryCase('BYTES element length past the end', (s) => {
    const bad = Buffer.alloc(8);
    bad.writeUInt32LE(100, 0); // says 100 bytes follow; 4 do
    s.headers.push({ name: 'text', shape: [1], datatype: 'BYTES', parameters: { binary_data_size: bad.length } });
    s.bytes.push(bad);
    return {};
  }),
  {
    name: 'binary frame shorter than its length prefix',
    code: 'PERCH_ERR_BINARY_SIZE',
    ws: () => ({ frame: Buffer.from([1, 2]), answerId: null }),
  },
  {
    name: 'negative Inference-Header-Content-Length',
    code: 'PERCH_ERR_BINARY_SIZE',
    http: () => ({ path: inferPath('vad'), body: JSON.stringify({ inputs: vadWire() }), headers: { 'inference-header-content-length': '-4' } }),
  },
  { name: 'model name with a bad percent-escape', code: 'PERCH_ERR_INVALID_MESSAGE', http: () => ({ path: '/v2/models/%ZZ/infer', body: '{}' }) },
  { name: 'unknown route', code: 'PERCH_ERR_ROUTE_NOT_FOUND', http: () => ({ method: 'GET', path: '/v2/nothing/here' }) },
  { name: 'route outside /v2', code: 'PERCH_ERR_ROUTE_NOT_FOUND', http: () => ({ method: 'POST', path: '/infer', body: '{}' }) },
  { name: 'GET on the infer endpoint', code: 'PERCH_ERR_METHOD_NOT_ALLOWED', http: () => ({ method: 'GET', path: inferPath('vad') }) },
  { name: 'DELETE on health', code: 'PERCH_ERR_METHOD_NOT_ALLOWED', http: () => ({ method: 'DELETE', path: '/v2/health/live' }) },
  {
    name: 'body over maxRequestBytes (declared length)',
    code: 'PERCH_ERR_REQUEST_TOO_LARGE',
    http: () => ({ path: inferPath('vad'), body: Buffer.alloc(LIMIT + 1, 0x20), headers: { 'content-type': 'application/json' } }),
  },
  {
    name: 'body over maxRequestBytes (chunked, no length)',
    code: 'PERCH_ERR_REQUEST_TOO_LARGE',
    http: () => ({ path: inferPath('vad'), body: Array.from({ length: 8 }, () => Buffer.alloc(16 * KiB, 0x20)), headers: { 'content-type': 'application/json' } }),
  },
];

describe('request errors: code, status, and the server keeps serving', () => {
  let repo: TempRepository;
  let rt: TestRuntime;
  let ws: RecordingWs;
  let seq = 0;

  before(async () => {
    repo = new TempRepository({ vad: { versions: { 1: MODEL_FILES.sileroVad16k }, config: vadModelJson(2) } });
    rt = await startRuntime(repo.dir, { server: { maxRequestBytes: LIMIT, maxFrameBytes: LIMIT } });
    ws = await RecordingWs.connect(rt.wsUrl);
  });
  after(async () => {
    await ws?.close();
    await rt?.stop();
    repo?.remove();
  });

  async function httpStillServes(): Promise<void> {
    const ok = await httpInfer(rt.baseUrl, 'vad', vadInputs(5));
    assert.equal(ok.status, 200, `a valid request after the error: ${JSON.stringify(ok.body)}`);
    assert.deepEqual(ok.outputs.map((t) => t.shape), [[1, 1], [2, 1, 128]]);
  }

  async function wsStillServes(): Promise<void> {
    const id = `ok-${++seq}`;
    ws.socket.send(JSON.stringify({ id, op: 'infer', model: 'vad', inputs: vadWire(6) }));
    const a = await ws.waitAnswer(id);
    assert.equal(a.ok, true, `a valid message on the same connection after the error: ${JSON.stringify(a)}`);
  }

  describe('over HTTP', () => {
    for (const c of CASES.filter((x) => x.http)) {
      test(`${c.name}: ${ERROR_CODES[c.code].status} ${c.code}`, async () => {
        const req = c.http!();
        const res = await rawRequest(rt.baseUrl, req.method ?? 'POST', req.path, { body: req.body, headers: req.headers });
        assert.ok(res.json, `a JSON error body, got: ${res.text.slice(0, 200)}`);
        assert.equal(res.json.code, c.code, JSON.stringify(res.json));
        assert.equal(res.status, ERROR_CODES[c.code].status);
        assert.equal(typeof res.json.error, 'string');
        await httpStillServes();
      });
    }
  });

  describe('over WebSocket, all on one connection', () => {
    let nullAnswers = 0;
    for (const c of CASES.filter((x) => x.ws)) {
      test(`${c.name}: ${c.code}`, async () => {
        const id = `case-${++seq}`;
        const { frame, answerId } = c.ws!(id);
        ws.socket.send(frame, { binary: typeof frame !== 'string' });
        if (answerId === null) nullAnswers++;
        const a = await ws.waitAnswer(answerId, answerId === null ? nullAnswers : 1);
        assert.equal(a.ok, false, JSON.stringify(a));
        assert.equal(a.id, answerId);
        const error = a.error as { code: string; message: string };
        assert.equal(error.code, c.code, JSON.stringify(a));
        assert.equal(typeof error.message, 'string');
        assert.equal(ws.answers(answerId).length, answerId === null ? nullAnswers : 1, 'exactly one answer');
        await wsStillServes();
      });
    }
  });

  test('a frame over maxFrameBytes closes that connection with 1009; another connection goes on', async () => {
    const victim = await RecordingWs.connect(rt.wsUrl);
    const bystander = await RecordingWs.connect(rt.wsUrl);
    try {
      victim.socket.send(JSON.stringify({ id: 'huge', op: 'infer', model: 'vad', inputs: [{ name: 'input', shape: [1], datatype: 'FP32', data: [0] }], pad: 'x'.repeat(LIMIT) }));
      assert.equal(await victim.waitClosed(), 1009);
      assert.equal(victim.answers('huge').length, 0, 'no answer: the frame was never read');
      bystander.socket.send(JSON.stringify({ id: 'after', op: 'infer', model: 'vad', inputs: vadWire(9) }));
      assert.equal((await bystander.waitAnswer('after')).ok, true);
      await wsStillServes();
      await httpStillServes();
    } finally {
      await victim.close();
      await bystander.close();
    }
  });

  test('a frame just under maxFrameBytes is read and answered', async () => {
    // The limit is on the frame, not the JSON value: an unknown top-level key is ignored by OIP.
    const id = 'near-limit';
    const base = JSON.stringify({ id, op: 'infer', model: 'vad', inputs: vadWire(10), pad: '' });
    ws.socket.send(base.replace('"pad":""', `"pad":"${'x'.repeat(LIMIT - base.length - 16)}"`));
    const a = await ws.waitAnswer(id);
    assert.equal(a.ok, true, JSON.stringify(a).slice(0, 300));
  });

  test('deeply nested tensor data is refused with a request error, not an internal one', async () => {
    // flat(Infinity) on such an array overflowed the stack: a 500 PERCH_ERR_INTERNAL.
    const depth = 20_000;
    const data = `${'['.repeat(depth)}0${']'.repeat(depth)}`;
    const body = `{"inputs":[{"name":"sr","shape":[],"datatype":"INT64","data":${data}}]}`;
    const res = await rawRequest(rt.baseUrl, 'POST', inferPath('vad'), { body, headers: { 'content-type': 'application/json' } });
    assert.equal(res.json?.code, 'PERCH_ERR_TENSOR_DATA', res.text.slice(0, 200));
    assert.equal(res.status, 400);
    await httpStillServes();
  });
});
