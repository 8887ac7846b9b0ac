// OpenTelemetry spans of gRPC requests (docs/observability.md): a unary ModelInfer call's
// `traceparent` metadata is the parent of its `perch.request`; on a ModelStreamInfer stream every
// request gets its own `perch.request` under the stream's traceparent. All three requests ride one
// batch (maxBatchSize 3, a long maxQueueDelayMs: it goes when full), whose `perch.batch` span links
// to each. Requests of a sequence (stateful) model are traced through their batches too. A real
// runtime, a real gRPC client built from the proto, a real OTLP/HTTP receiver.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type * as grpc from '@grpc/grpc-js';
import { after, before, test } from 'node:test';
import { waitFor } from '../helpers/clients.js';
import { clsInput } from '../helpers/models.js';
import { OtlpReceiver, type ReceivedSpan } from '../helpers/otlp-receiver.js';
import { MODEL_FILES, SHIPPED_MODELS } from '../helpers/paths.js';
import { TempRepository } from '../helpers/repository.js';
import { startRuntime, type TestRuntime } from '../helpers/runtime.js';
import { CHUNK, CONTEXT, SAMPLE_RATE } from '../helpers/vad.js';
import { InferenceClient, rawRequest, type StreamAnswer } from './client.js';

let receiver: OtlpReceiver;
let repo: TempRepository;
let rt: TestRuntime;
let client: InferenceClient;

before(async () => {
  receiver = await OtlpReceiver.start();
  repo = new TempRepository({
    cls: { versions: { 1: MODEL_FILES.ocrCls }, config: { maxBatchSize: 3, batching: { maxQueueDelayMs: 10_000 } } },
    // The shipped VAD (a sequence model), one session.
    vad: { versions: { 1: MODEL_FILES.sileroVad }, config: { ...shippedVadConfig(), session: { intraOpNumThreads: 1, instances: 1 } } },
  });
  rt = await startRuntime(repo.dir, { device: { id: 'grpc-traced' }, server: { grpcPort: 0 }, telemetry: { traces: { endpoint: receiver.url } } });
  client = new InferenceClient(`127.0.0.1:${rt.runtime.grpc?.port}`);
});

after(async () => {
  client.close();
  await rt.stop();
  repo.remove();
  await receiver.close();
});

function shippedVadConfig(): Record<string, unknown> {
  return JSON.parse(readFileSync(join(SHIPPED_MODELS, 'silero-vad', 'model.json'), 'utf8')) as Record<string, unknown>;
}

function traceparent(): { header: string; traceId: string; spanId: string } {
  const traceId = randomBytes(16).toString('hex');
  const spanId = randomBytes(8).toString('hex');
  return { header: `00-${traceId}-${spanId}-01`, traceId, spanId };
}

function withTraceparent(header: string): grpc.Metadata {
  const m = client.metadata();
  m.set('traceparent', header);
  return m;
}

function unary(header: string, seed: number): Promise<unknown> {
  const fn = client.raw.ModelInfer as unknown as (req: unknown, md: grpc.Metadata, cb: (err: Error | null, res: unknown) => void) => void;
  return new Promise((resolve, reject) => {
    fn.call(client.raw, rawRequest('cls', clsInput(seed)), withTraceparent(header), (err, res) => (err ? reject(err) : resolve(res)));
  });
}

/** Two requests on one stream whose metadata carries `header`; resolves with both answers. */
function streamOfTwo(header: string): Promise<StreamAnswer[]> {
  const fn = client.raw.ModelStreamInfer as unknown as (md: grpc.Metadata) => grpc.ClientDuplexStream<unknown, StreamAnswer>;
  const call = fn.call(client.raw, withTraceparent(header));
  const answers: StreamAnswer[] = [];
  return new Promise((resolve, reject) => {
    call.on('data', (a: StreamAnswer) => {
      answers.push(a);
      if (answers.length === 2) {
        call.end();
        resolve(answers);
      }
    });
    call.on('error', reject);
    call.write(rawRequest('cls', clsInput(2), { id: 's1' }));
    call.write(rawRequest('cls', clsInput(3), { id: 's2' }));
  });
}

test('gRPC: the traceparent metadata parents each request, unary and streamed; the shared batch links all three', async () => {
  const unaryParent = traceparent();
  const streamParent = traceparent();
  const [, streamed] = await Promise.all([unary(unaryParent.header, 1), streamOfTwo(streamParent.header)]);
  for (const a of streamed) assert.equal(a.error_message, '', 'each streamed request answered');

  await waitFor(() => receiver.named('perch.batch').length === 1 && receiver.named('perch.request').length === 3 && receiver.named('perch.answer').length === 3, 30_000,
    () => `spans: ${JSON.stringify(receiver.spans.map((s) => s.name))}`);
  const [batch] = receiver.named('perch.batch') as [ReceivedSpan];
  assert.equal(batch.service, 'grpc-traced');
  assert.equal(batch.attributes['perch.batch.requests'], 3);
  const requests = receiver.named('perch.request');
  assert.deepEqual(batch.links.map((l) => l.spanId).sort(), requests.map((r) => r.spanId).sort(), 'the batch links every request it carried');

  const fromUnary = requests.filter((r) => r.traceId === unaryParent.traceId);
  const fromStream = requests.filter((r) => r.traceId === streamParent.traceId);
  assert.equal(fromUnary.length, 1, 'the unary call is one request span in the caller\'s trace');
  assert.equal(fromStream.length, 2, 'each streamed request is its own span in the stream\'s trace');
  for (const r of [...fromUnary, ...fromStream]) {
    assert.equal(r.attributes['perch.transport'], 'grpc');
    assert.equal(r.attributes['perch.model'], 'cls');
    assert.equal(r.kind, 2, 'SERVER');
    assert.equal(r.status.code ?? 0, 0, 'not an error');
    assert.deepEqual(receiver.childrenOf(r).map((s) => s.name).sort(), ['perch.answer', 'perch.compute', 'perch.queue', 'perch.receive']);
  }
  assert.equal(fromUnary[0]!.parentSpanId, unaryParent.spanId);
  for (const r of fromStream) assert.equal(r.parentSpanId, streamParent.spanId);
});

const SR = Buffer.alloc(8);
SR.writeBigInt64LE(BigInt(SAMPLE_RATE));

function vadChunk(id: string, sequence: string, start: boolean, end: boolean): Record<string, unknown> {
  const input = new Float32Array(CONTEXT + CHUNK).fill(0.01);
  return {
    model_name: 'vad',
    id,
    parameters: { sequence_id: { string_param: sequence }, sequence_start: { bool_param: start }, sequence_end: { bool_param: end } },
    inputs: [{ name: 'input', datatype: 'FP32', shape: [1, CONTEXT + CHUNK] }, { name: 'sr', datatype: 'INT64', shape: [] }],
    raw_input_contents: [Buffer.from(input.buffer), SR],
  };
}

test('gRPC: requests of a sequence model are traced through their batches (queue, compute, a linked perch.batch)', async () => {
  const parent = traceparent();
  const fn = client.raw.ModelStreamInfer as unknown as (md: grpc.Metadata) => grpc.ClientDuplexStream<unknown, StreamAnswer>;
  const call = fn.call(client.raw, withTraceparent(parent.header));
  const answers: StreamAnswer[] = [];
  const done = new Promise<void>((resolve, reject) => {
    call.on('data', (a: StreamAnswer) => {
      answers.push(a);
      if (answers.length === 4) resolve();
    });
    call.on('error', reject);
  });
  // Two sequences, two chunks each (the second chunk of a sequence waits for its first).
  for (const [i, [seq, start, end]] of ([['a', true, false], ['b', true, false], ['a', false, true], ['b', false, true]] as const).entries()) {
    call.write(vadChunk(`c${i}`, seq, start, end));
  }
  await done;
  call.end();
  for (const a of answers) assert.equal(a.error_message, '', 'each chunk answered');

  const mine = (): ReceivedSpan[] => receiver.named('perch.request').filter((r) => r.traceId === parent.traceId);
  await waitFor(() => mine().length === 4 && mine().every((r) => receiver.childrenOf(r).length === 4), 30_000,
    () => `spans: ${JSON.stringify(receiver.spans.map((s) => s.name))}`);
  const batches = receiver.named('perch.batch').filter((b) => b.attributes['perch.model'] === 'vad');
  for (const r of mine()) {
    assert.equal(r.attributes['perch.model'], 'vad');
    const kids = receiver.childrenOf(r);
    assert.deepEqual(kids.map((s) => s.name).sort(), ['perch.answer', 'perch.compute', 'perch.queue', 'perch.receive']);
    const [link] = kids.find((s) => s.name === 'perch.compute')!.links;
    const batch = batches.find((b) => b.spanId === link?.spanId);
    assert.ok(batch, 'perch.compute links to a perch.batch span of the VAD');
    assert.ok(batch.links.some((l) => l.spanId === r.spanId), 'and that batch links back to the request');
    assert.deepEqual(receiver.childrenOf(batch).map((s) => s.name).sort(), ['perch.session.run', 'perch.split', 'perch.stack']);
  }
});
