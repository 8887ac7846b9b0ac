// Property tests (fast-check) for the request paths (issue 2): random frames over WebSocket and
// random bodies over HTTP never crash the process or leave a request unanswered.
//
// WebSocket: each run sends a few frames (random bytes, random text, random JSON values, valid
// infer messages with random mutations, binary frames whose header and lengths may lie) on one
// connection, then a barrier. Every frame gets exactly one answer (docs/protocol.md section 4): one with
// its id when the frame is a JSON object with a string or finite number id, one with id null otherwise, and no
// error is PERCH_ERR_INTERNAL (an internal error is a bug, not an answer to bad input).
// HTTP: random bodies, Inference-Header-Content-Length values and paths get 200 or a JSON error
// whose code has the status the registry gives it. Afterwards health is live and a valid request
// is served. The seed is fixed (PERCH_FUZZ_SEED overrides it) so a run is repeatable.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import { ERROR_CODES, isErrorCode } from '../../runtime/base/errors.js';
import { DATATYPES } from '../../runtime/tensor/datatypes.js';
import { httpInfer, jsonTensor, waitFor } from '../helpers/clients.js';
import { vadInputs } from '../helpers/models.js';
import { MODEL_FILES } from '../helpers/paths.js';
import { TempRepository } from '../helpers/repository.js';
import { startRuntime, type TestRuntime } from '../helpers/runtime.js';
import { vadModelJson } from '../helpers/scenarios.js';
import { binaryParts, rawRequest, RecordingWs } from '../helpers/wire.js';

const SEED = Number(process.env.PERCH_FUZZ_SEED ?? 20260705);
const RUNS = 250;
const LIMIT = 256 * 1024;

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

interface Frame {
  data: string | Buffer;
  binary: boolean;
}

// ---- the valid messages that mutations start from ------------------------------------------

/** A valid infer message: stateless vad, or vad-seq (a sequence model: the runtime keeps the state). */
function validInfer(seed: number, withOutputs: boolean): { [k: string]: Json } {
  const sequence = seed % 3 === 0;
  const inputs = vadInputs(seed).filter((t) => !sequence || t.name !== 'state');
  return {
    id: `v${seed}`,
    op: 'infer',
    model: sequence ? 'vad-seq' : 'vad',
    inputs: inputs.map((t) => jsonTensor(t) as unknown as Json),
    ...(withOutputs ? { outputs: [{ name: 'stateN' }] } : {}),
    ...(sequence ? { parameters: { sequence_id: seed % 4, sequence_start: seed % 2 === 0, sequence_end: seed % 5 === 0 } } : {}),
  };
}

const PATHS: Array<Array<string | number>> = [
  ['id'], ['op'], ['model'], ['version'], ['inputs'], ['outputs'], ['parameters'], ['type'], ['payload'], ['topics'],
  ['outputs', 0, 'name'], ['outputs', 0, 'parameters'],
  ['parameters', 'priority'], ['parameters', 'timeout'], ['parameters', 'binary_data_output'], ['parameters', 'cache'],
  ['parameters', 'sequence_id'], ['parameters', 'sequence_start'], ['parameters', 'sequence_end'],
  ...[0, 1, 2].flatMap((i) => [
    ['inputs', i], ['inputs', i, 'name'], ['inputs', i, 'shape'], ['inputs', i, 'datatype'], ['inputs', i, 'data'],
    ['inputs', i, 'parameters'], ['inputs', i, 'parameters', 'binary_data_size'], ['inputs', i, 'shape', 0], ['inputs', i, 'shape', 1],
    ['inputs', i, 'data', 0],
  ]),
];

const jsonValue = fc.jsonValue({ maxDepth: 3 }) as fc.Arbitrary<Json>;
const interesting: fc.Arbitrary<Json> = fc.oneof(
  jsonValue,
  fc.constantFrom<Json>(...DATATYPES, 'infer', 'status', 'emit', 'subscribe', 'vad', 'vad-seq', 'no-such-model', 'input', 'state', 'sr', 'output', 'stateN', ['models'], ['events']),
  fc.integer({ min: -3, max: 5000 }),
  fc.array(fc.integer({ min: 0, max: 1200 }), { maxLength: 4 }),
);
const mutation = fc.record({ path: fc.constantFrom(...PATHS), remove: fc.boolean(), value: interesting });

function mutate(base: { [k: string]: Json }, ms: ReadonlyArray<{ path: Array<string | number>; remove: boolean; value: Json }>): Json {
  const msg = structuredClone(base) as Json;
  for (const m of ms) {
    let node: Json = msg;
    for (const key of m.path.slice(0, -1)) {
      node = node !== null && typeof node === 'object' ? ((node as Record<string, Json>)[key as string] ?? null) : null;
    }
    if (node === null || typeof node !== 'object') continue;
    const last = m.path[m.path.length - 1] as string | number;
    if (Array.isArray(node) && typeof last === 'number') {
      if (m.remove) node.splice(last, 1);
      else node[last] = m.value;
    } else if (!Array.isArray(node)) {
      if (m.remove) delete node[last as string];
      else node[last as string] = m.value;
    }
  }
  return msg;
}

const mutatedMessage = fc
  .record({
    seed: fc.nat(1000),
    outputs: fc.boolean(),
    id: fc.oneof(fc.string({ maxLength: 12 }), fc.string({ unit: 'binary', maxLength: 6 })),
    mutations: fc.array(mutation, { maxLength: 3 }),
  })
  .map(({ seed, outputs, id, mutations }) => mutate({ ...validInfer(seed, outputs), id }, mutations));

/** A binary frame from a mutated message: tensors as binary parts whose sizes may lie. */
const binaryMessageFrame = fc
  .record({
    seed: fc.nat(1000),
    id: fc.string({ maxLength: 12 }),
    mutations: fc.array(mutation, { maxLength: 2 }),
    sizeLie: fc.option(fc.record({ input: fc.nat(2), size: fc.nat(5000) }), { nil: undefined }),
    extraBytes: fc.option(fc.uint8Array({ maxLength: 16 }), { nil: undefined }),
    dropBytes: fc.nat(8),
    lengthLie: fc.option(fc.oneof(fc.nat(4000), fc.constant(0xffffffff)), { nil: undefined }),
  })
  .map(({ seed, id, mutations, sizeLie, extraBytes, dropBytes, lengthLie }): Frame => {
    const parts = binaryParts(vadInputs(seed));
    const base = { id, op: 'infer', model: 'vad', inputs: parts.map((p) => p.header as unknown as Json), parameters: { binary_data_output: seed % 2 === 0 } };
    const header = mutate(base, mutations);
    if (sizeLie) {
      const entry = (header as { inputs?: Json[] }).inputs?.[sizeLie.input];
      if (entry && typeof entry === 'object' && !Array.isArray(entry)) entry.parameters = { binary_data_size: sizeLie.size };
    }
    let bytes = Buffer.concat(parts.map((p) => p.bytes));
    bytes = bytes.subarray(0, bytes.length - dropBytes);
    if (extraBytes) bytes = Buffer.concat([bytes, extraBytes]);
    const json = Buffer.from(JSON.stringify(header));
    const prefix = Buffer.alloc(4);
    prefix.writeUInt32LE(lengthLie ?? json.length, 0);
    return { data: Buffer.concat([prefix, json, bytes]), binary: true };
  });

const wsFrame: fc.Arbitrary<Frame> = fc.oneof(
  fc.uint8Array({ maxLength: 300 }).map((b): Frame => ({ data: Buffer.from(b), binary: true })),
  fc.string({ unit: 'binary', maxLength: 200 }).map((s): Frame => ({ data: s, binary: false })),
  jsonValue.map((v): Frame => ({ data: JSON.stringify(v), binary: false })),
  fc.record({ id: fc.oneof(fc.string({ maxLength: 8 }), jsonValue), op: fc.constantFrom('infer', 'status', 'emit', 'subscribe', 'explode') }, { requiredKeys: [] })
    .map((o): Frame => ({ data: JSON.stringify(o), binary: false })),
  mutatedMessage.map((m): Frame => ({ data: JSON.stringify(m), binary: false })),
  fc.tuple(mutatedMessage, fc.nat()).map(([m, cut]): Frame => {
    const text = JSON.stringify(m);
    return { data: text.slice(0, cut % (text.length + 1)), binary: false }; // truncated JSON
  }),
  binaryMessageFrame,
);

/** The id docs/protocol.md section 4 says the answer carries: a JSON object's string or number id, else null. */
function expectedId(f: Frame): string | number | null {
  try {
    let header: Buffer;
    if (f.binary) {
      const b = f.data as Buffer;
      if (b.length < 4) return null;
      const n = b.readUInt32LE(0);
      if (n > b.length - 4) return null;
      header = b.subarray(4, 4 + n);
    } else {
      header = Buffer.from(f.data as string, 'utf8'); // what goes on the wire (lone surrogates become U+FFFD)
    }
    const v = JSON.parse(header.toString('utf8')) as unknown;
    if (v === null || typeof v !== 'object' || Array.isArray(v)) return null;
    const id = (v as { id?: unknown }).id;
    // A number past the double range parses to Infinity, which JSON cannot carry back: null.
    return typeof id === 'string' || (typeof id === 'number' && Number.isFinite(id)) ? id : null;
  } catch {
    return null;
  }
}

function countIds(ids: Array<string | number | null>): Map<string | number | null, number> {
  const m = new Map<string | number | null, number>();
  for (const id of ids) m.set(id, (m.get(id) ?? 0) + 1);
  return m;
}

// ---- HTTP bodies -----------------------------------------------------------------------------

interface HttpCase {
  path: string;
  body: Buffer;
  headers: Record<string, string>;
}

const httpPath = fc.oneof(
  { weight: 6, arbitrary: fc.constant('/v2/models/vad/infer') },
  { weight: 1, arbitrary: fc.constantFrom('/v2/models/vad/versions/1/infer', '/v2/models/vad/versions/0/infer', '/v2/models/nope/infer', '/v2/models/%E0%A4%A/infer', '/v2/models/vad/versions/%ZZ/infer', '/v2/models/%/infer') },
  { weight: 1, arbitrary: fc.string({ maxLength: 10 }).map((s) => `/v2/models/${encodeURIComponent(s)}/infer`) },
);

const httpBody = fc.oneof(
  fc.uint8Array({ maxLength: 300 }).map((b) => ({ body: Buffer.from(b), headerLength: undefined as number | undefined })),
  fc.string({ unit: 'binary', maxLength: 200 }).map((s) => ({ body: Buffer.from(s), headerLength: undefined })),
  jsonValue.map((v) => ({ body: Buffer.from(JSON.stringify(v)), headerLength: undefined })),
  mutatedMessage.map((m) => ({ body: Buffer.from(JSON.stringify(m)), headerLength: undefined })),
  binaryMessageFrame.map((f) => {
    // The same lying binary layout as over WebSocket, minus the 4-byte prefix: its length goes
    // in the header instead.
    const b = f.data as Buffer;
    return { body: b.subarray(4), headerLength: b.readUInt32LE(0) };
  }),
);

const httpCase: fc.Arbitrary<HttpCase> = fc
  .record({
    path: httpPath,
    body: httpBody,
    contentType: fc.constantFrom('application/json', 'application/octet-stream', 'text/plain', ''),
    lengthHeader: fc.oneof(
      fc.constant<string | null>(null),
      fc.constant<string | null>('auto'),
      fc.integer({ min: -5, max: 100_000 }).map(String),
      fc.string({ maxLength: 6 }),
    ),
  })
  .map(({ path, body, contentType, lengthHeader }) => {
    const headers: Record<string, string> = {};
    if (contentType) headers['content-type'] = contentType;
    const declared = lengthHeader === 'auto' ? (body.headerLength === undefined ? null : String(body.headerLength)) : lengthHeader;
    if (declared !== null) headers['inference-header-content-length'] = declared;
    return { path, body: body.body, headers };
  });

// ---- the tests -------------------------------------------------------------------------------

describe('fuzz: random frames and bodies', () => {
  let repo: TempRepository;
  let rt: TestRuntime;

  before(async () => {
    repo = new TempRepository({
      vad: { versions: { 1: MODEL_FILES.sileroVad16k }, config: vadModelJson(4) },
      'vad-seq': {
        versions: { 1: MODEL_FILES.sileroVad16k },
        config: { ...vadModelJson(4), sequence: { state: [{ input: 'state', output: 'stateN', init: 'zeros' }], idleTimeoutMs: 60_000, maxSequences: 3 } },
      },
    });
    rt = await startRuntime(repo.dir, { server: { maxRequestBytes: LIMIT, maxFrameBytes: LIMIT } });
  });
  after(async () => {
    await rt?.stop();
    repo?.remove();
  });

  async function stillServes(): Promise<void> {
    const live = await fetch(`${rt.baseUrl}/v2/health/live`);
    assert.equal(live.status, 200);
    const ok = await httpInfer(rt.baseUrl, 'vad', vadInputs(1));
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
  }

  test(`WebSocket: ${RUNS} runs of random frames; every frame gets exactly one answer`, async (t) => {
    const ws = await RecordingWs.connect(rt.wsUrl);
    const localPort = (ws.socket as unknown as { _socket: { localPort: number } })._socket.localPort;
    const serverSide = () => rt.runtime.ws.connectionStats().find((c) => c.remotePort === localPort);
    let run = 0;
    let frames = 0;
    let withId = 0;
    const seen = new Map<string, number>();
    try {
      await fc.assert(
        fc.asyncProperty(fc.array(wsFrame, { minLength: 1, maxLength: 4 }), async (batch) => {
          run++;
          const start = ws.messages.length;
          for (const f of batch) ws.socket.send(f.data, { binary: f.binary });
          frames += batch.length;
          // Barrier: the server reads frames in order, so once the first barrier is answered
          // every frame above has been read; once nothing is in flight every answer has been
          // sent; the second barrier's answer comes after all of them on the wire.
          const b1 = `\u0000barrier-a-${run}`;
          const b2 = `\u0000barrier-b-${run}`;
          ws.socket.send(JSON.stringify({ id: b1, op: 'status' }));
          await ws.waitAnswer(b1);
          await waitFor(() => serverSide()?.inflight === 0 || ws.closeCode !== null, 20_000, 'every frame answered');
          ws.socket.send(JSON.stringify({ id: b2, op: 'status' }));
          await ws.waitAnswer(b2);
          assert.equal(ws.closeCode, null, 'the connection stays open');

          const got = ws.messages.slice(start).filter((m) => m.header?.op !== 'notify');
          const answers = got.filter((m) => m.header?.id !== b1 && m.header?.id !== b2);
          for (const a of answers) {
            assert.ok(a.header, 'every answer is readable JSON');
            const label = a.header.ok === true ? 'ok' : String((a.header.error as { code?: string } | undefined)?.code);
            seen.set(label, (seen.get(label) ?? 0) + 1);
            if (a.header.ok === false) {
              const code = (a.header.error as { code?: string } | undefined)?.code ?? '';
              assert.ok(isErrorCode(code), `a registered code: ${code}`);
              assert.notEqual(code, 'PERCH_ERR_INTERNAL', JSON.stringify(a.header).slice(0, 400));
            } else {
              assert.equal(a.header.ok, true, JSON.stringify(a.header).slice(0, 400));
            }
          }
          const want = batch.map(expectedId);
          withId += want.filter((id) => id !== null).length;
          assert.deepEqual(countIds(answers.map((a) => (a.header?.id ?? null) as string | number | null)), countIds(want), 'one answer per frame, each with the frame\'s id (or null)');
        }),
        { numRuns: RUNS, seed: SEED, endOnFailure: true },
      );
    } finally {
      await ws.close();
    }
    t.diagnostic(`${frames} frames in ${RUNS} runs (${withId} with a readable id), seed ${SEED}; answers: ${[...seen].map(([k, v]) => `${k} x${v}`).join(', ')}`);
    await stillServes();
    const other = await RecordingWs.connect(rt.wsUrl);
    other.socket.send(JSON.stringify({ id: 'after', op: 'infer', model: 'vad', inputs: vadInputs(2).map(jsonTensor) }));
    assert.equal((await other.waitAnswer('after')).ok, true);
    await other.close();
  });

  test(`HTTP: ${RUNS} random bodies to POST infer; each gets 200 or its code's status`, async (t) => {
    const seen = new Map<string, number>();
    await fc.assert(
      fc.asyncProperty(httpCase, async (c) => {
        const res = await rawRequest(rt.baseUrl, 'POST', c.path, { body: c.body, headers: c.headers });
        if (res.status === 200) {
          seen.set('200', (seen.get('200') ?? 0) + 1);
          const hl = res.headers['inference-header-content-length'];
          const header = JSON.parse(hl === undefined ? res.text : res.text.slice(0, Number(hl))) as { outputs?: unknown[] };
          assert.ok(Array.isArray(header.outputs), 'a 200 carries outputs');
          return;
        }
        assert.ok(res.json, `a JSON error body (status ${res.status}): ${res.text.slice(0, 200)}`);
        const code = String(res.json.code);
        seen.set(code, (seen.get(code) ?? 0) + 1);
        assert.ok(isErrorCode(code), `a registered code: ${code}`);
        assert.notEqual(code, 'PERCH_ERR_INTERNAL', `${c.path}: ${res.text.slice(0, 300)}`);
        assert.equal(res.status, ERROR_CODES[code].status, `status of ${code}`);
        assert.equal(typeof res.json.error, 'string');
      }),
      { numRuns: RUNS, seed: SEED, endOnFailure: true },
    );
    t.diagnostic(`answers: ${[...seen].map(([k, v]) => `${k} x${v}`).join(', ')}`);
    await stillServes();
  });
});
