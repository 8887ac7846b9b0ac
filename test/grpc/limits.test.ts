// The gRPC API shares the process-wide client budget (server.maxClientBytes) with HTTP and
// WebSocket: while an HTTP body holds the whole budget, a ModelInfer is refused
// RESOURCE_EXHAUSTED / PERCH_ERR_OVERLOADED without being decoded; once the bytes are given back
// it is served. And bytes that are not a ModelInferRequest get a coded INVALID_ARGUMENT, not
// grpc-js' bare INTERNAL.
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { connect } from 'node:net';
import { after, before, test } from 'node:test';
import { JSON_PARSE_PEAK } from '../../runtime/api/client-budget.js';
import { GRPC_STATUS } from '../../runtime/api/grpc/status.js';
import { clsInput } from '../helpers/models.js';
import { MODEL_FILES } from '../helpers/paths.js';
import { TempRepository } from '../helpers/repository.js';
import { startRuntime, type TestRuntime } from '../helpers/runtime.js';
import { waitFor } from '../helpers/wait.js';
import { InferenceClient, rawRequest, type InferAnswer } from './client.js';

const MiB = 1024 * 1024;
let repo: TempRepository;
let rt: TestRuntime;
let client: InferenceClient;

before(async () => {
  repo = new TempRepository({ cls: { versions: { 1: MODEL_FILES.ocrCls } } });
  rt = await startRuntime(repo.dir, { server: { grpcPort: 0, maxClientBytes: MiB, maxRequestBytes: MiB } });
  client = new InferenceClient(`127.0.0.1:${rt.runtime.grpc?.port}`);
});
after(async () => {
  client.close();
  await rt.stop();
  repo.remove();
});

test('a spent client budget refuses gRPC requests until HTTP gives its bytes back', async () => {
  // An HTTP infer that declares a body of the whole budget and sends none of it: its
  // Content-Length, and the parse of its JSON header (JSON_PARSE_PEAK - 1 times more), are taken
  // from the budget before the body is read (docs/reliability.md). An OIP binary body with a
  // small JSON header: a JSON body of a MiB could never be parsed within this budget and gets 413
  // from its headers.
  const socket = connect(rt.runtime.address.port, '127.0.0.1');
  await new Promise((resolve) => socket.once('connect', resolve));
  socket.write(`POST /v2/models/cls/infer HTTP/1.1\r\nHost: 127.0.0.1\r\nInference-Header-Content-Length: 64\r\nContent-Length: ${MiB - 64 * (JSON_PARSE_PEAK - 1)}\r\n\r\n`);
  await waitFor(() => rt.runtime.clientBudget.spent, 10_000, 'the budget spent by the held body');
  const f = await client.failure('ModelInfer', rawRequest('cls', clsInput(1)));
  assert.equal(f.code, GRPC_STATUS.RESOURCE_EXHAUSTED, f.details);
  assert.equal(f.perchCode, 'PERCH_ERR_OVERLOADED');
  assert.deepEqual(await client.call('ServerLive', {}), { live: true }, 'health is not refused');
  socket.destroy();
  await waitFor(() => rt.runtime.clientBudget.heldBytes === 0, 10_000, 'the bytes given back');
  const a = await client.call<InferAnswer>('ModelInfer', rawRequest('cls', clsInput(1)));
  assert.equal(a.outputs.length, 1);
});

test('bytes that are not a ModelInferRequest: INVALID_ARGUMENT with PERCH_ERR_INVALID_MESSAGE', async () => {
  const raw = new grpc.Client(`127.0.0.1:${rt.runtime.grpc?.port}`, grpc.credentials.createInsecure());
  try {
    // Field 1 (model_name) as a length-delimited string that claims more bytes than follow.
    const garbage = Buffer.from([0x0a, 0x7f, 0x61]);
    const err = await new Promise<grpc.ServiceError>((resolve, reject) => {
      raw.makeUnaryRequest('/inference.GRPCInferenceService/ModelInfer', (b: Buffer) => b, (b: Buffer) => b, garbage, (e) => (e ? resolve(e) : reject(new Error('accepted garbage'))));
    });
    assert.equal(err.code, GRPC_STATUS.INVALID_ARGUMENT, err.details);
    assert.equal(err.metadata.get('perch-error-code')[0], 'PERCH_ERR_INVALID_MESSAGE');
  } finally {
    raw.close();
  }
});
