// gRPC clients that do not read their answers (docs/grpc.md "Auth and limits"; red-team pass):
// a raw HTTP/2 client whose stream window is 0 takes no DATA at all. Its ModelStreamInfer
// stream and its unary ModelInfer calls are answered, the answers are held of the client budget
// while unsent, and after server.slowReaderTimeoutMs each call's stream is reset
// (ENHANCE_YOUR_CALM) and everything given back; a client that reads gets the same large answers
// meanwhile. Before, the stream held its answers for as long as the connection stayed, and unary
// answers were not counted once handed to grpc-js.
import assert from 'node:assert/strict';
import { connect, constants, type ClientHttp2Session, type ClientHttp2Stream } from 'node:http2';
import { after, before, test } from 'node:test';
import * as loader from '@grpc/proto-loader';
import { randomFp32 } from '../helpers/models.js';
import { MODEL_FILES } from '../helpers/paths.js';
import { TempRepository } from '../helpers/repository.js';
import { startRuntime, type TestRuntime } from '../helpers/runtime.js';
import { waitFor } from '../helpers/wait.js';
import { InferenceClient, PROTO, rawRequest, type InferAnswer } from './client.js';

const service = loader.loadSync(PROTO, { keepCase: true, longs: String, defaults: true, oneofs: true })['inference.GRPCInferenceService'] as loader.ServiceDefinition;
const ModelInfer = service.ModelInfer as loader.MethodDefinition<object, object>;

// pp-ocr-rec on a 32-pixel-wide line: 18 KB in, [1, 4, 6625] FP32 = 106 KB out (over 64 KiB).
const request = rawRequest('rec', [randomFp32('x', [1, 3, 48, 32], 1)]);
const ANSWER_BYTES = 4 * 6625 * 4;

/** One gRPC message on the wire: 0 (not compressed), its length, its bytes. */
function framed(message: object): Buffer {
  const body = ModelInfer.requestSerialize(message);
  const head = Buffer.alloc(5);
  head.writeUInt32BE(body.length, 1);
  return Buffer.concat([head, body]);
}

let repo: TempRepository;
let rt: TestRuntime;
let reader: InferenceClient;

before(async () => {
  repo = new TempRepository({ rec: { versions: { 1: MODEL_FILES.ocrRec } } });
  rt = await startRuntime(repo.dir, { server: { grpcPort: 0, slowReaderTimeoutMs: 300 } });
  reader = new InferenceClient(`127.0.0.1:${rt.runtime.grpc?.port}`);
});
after(async () => {
  reader.close();
  await rt.stop();
  repo.remove();
});

/** A connection that takes no DATA: every stream's window is 0. */
function nonReader(): ClientHttp2Session {
  const session = connect(`http://127.0.0.1:${rt.runtime.grpc?.port}`, { settings: { initialWindowSize: 0 } });
  session.on('error', () => undefined);
  return session;
}

function open(session: ClientHttp2Session, method: string): { stream: ClientHttp2Stream; closed: () => boolean } {
  const stream = session.request({ ':method': 'POST', ':path': `/inference.GRPCInferenceService/${method}`, 'content-type': 'application/grpc', te: 'trailers' });
  stream.on('error', () => undefined);
  let closed = false;
  stream.once('close', () => (closed = true));
  return { stream, closed: () => closed };
}

async function readerGetsItsAnswer(): Promise<void> {
  const a = await reader.call<InferAnswer>('ModelInfer', request);
  assert.equal(a.raw_output_contents[0]?.length, ANSWER_BYTES);
}

test('a ModelStreamInfer stream that takes no answers is reset after slowReaderTimeoutMs, its bytes given back', async () => {
  const session = nonReader();
  try {
    const s = open(session, 'ModelStreamInfer');
    for (let i = 0; i < 4; i++) s.stream.write(framed({ ...request, id: `r${i}` }));
    await waitFor(() => rt.runtime.clientBudget.heldBytes >= 2 * ANSWER_BYTES, 10_000, () => `held ${rt.runtime.clientBudget.heldBytes}`);
    await readerGetsItsAnswer();
    await waitFor(s.closed, 10_000, 'the stream is reset');
    assert.equal(s.stream.rstCode, constants.NGHTTP2_ENHANCE_YOUR_CALM);
    await waitFor(() => rt.runtime.clientBudget.heldBytes === 0, 10_000, () => `held ${rt.runtime.clientBudget.heldBytes}`);
    await readerGetsItsAnswer();
  } finally {
    session.destroy();
  }
});

test('unary answers not taken are held of the budget, then their streams are reset and the bytes given back', async () => {
  const session = nonReader();
  try {
    const calls = Array.from({ length: 4 }, () => {
      const c = open(session, 'ModelInfer');
      c.stream.end(framed(request));
      return c;
    });
    // Answered, not sent: counted (they were let go of once handed to grpc-js).
    await waitFor(() => rt.runtime.clientBudget.heldBytes >= 4 * ANSWER_BYTES, 10_000, () => `held ${rt.runtime.clientBudget.heldBytes}`);
    await readerGetsItsAnswer();
    await waitFor(() => calls.every((c) => c.closed()), 10_000, 'the calls are reset');
    for (const c of calls) assert.equal(c.stream.rstCode, constants.NGHTTP2_ENHANCE_YOUR_CALM);
    await waitFor(() => rt.runtime.clientBudget.heldBytes === 0, 10_000, () => `held ${rt.runtime.clientBudget.heldBytes}`);
    assert.equal(session.destroyed, false, 'the connection itself stays');
  } finally {
    session.destroy();
  }
});
