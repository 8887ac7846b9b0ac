// Triton's ModelStreamInfer against a real Perch: 50 VAD sequences at once over 5 streams
// (10 each), every sequence's speech probabilities equal to that audio run alone through raw
// onnxruntime with the state fed back by hand (the VAD case of test/sequences/vad-streams.test.ts);
// sequences start staggered so batches mix sequences at different points. Then: a failed
// request is answered in the stream with its id and the stream goes on, and a stream's
// sequences end when it ends.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type * as grpc from '@grpc/grpc-js';
import ort from 'onnxruntime-node';
import { MODEL_FILES, SHIPPED_MODELS } from '../helpers/paths.js';
import { startRuntime, type TestRuntime } from '../helpers/runtime.js';
import { chunkInputs, CHUNK, CONTEXT, loadSpeech, rawStream, SAMPLE_RATE } from '../helpers/vad.js';
import { waitFor } from '../helpers/wait.js';
import { InferenceClient, type StreamAnswer } from './client.js';

const SEQUENCES = 50;
const STREAMS = 5;

/** One ModelStreamInfer stream; answers matched to requests by id. */
class Stream {
  private readonly waiting = new Map<string, (a: StreamAnswer) => void>();
  readonly call: grpc.ClientDuplexStream<unknown, StreamAnswer>;
  readonly status: Promise<grpc.StatusObject>;

  constructor(client: InferenceClient) {
    this.call = client.stream();
    this.call.on('data', (a: StreamAnswer) => {
      const id = a.infer_response?.id ?? '';
      this.waiting.get(id)?.(a);
      this.waiting.delete(id);
    });
    this.call.on('error', () => undefined); // the status says it
    this.status = new Promise((resolve) => this.call.on('status', resolve));
  }

  send(request: Record<string, unknown>): Promise<StreamAnswer> {
    return new Promise((resolve) => {
      this.waiting.set(request.id as string, resolve);
      this.call.write(request);
    });
  }
}

const SR = Buffer.alloc(8);
SR.writeBigInt64LE(BigInt(SAMPLE_RATE));

function chunkRequest(id: string, sequence: number, input: Float32Array, start: boolean, end: boolean): Record<string, unknown> {
  // Half the sequences name themselves with an integer id, half with a string (Triton allows both).
  const sequenceId = sequence % 2 === 0 ? { int64_param: String(1000 + sequence) } : { string_param: `seq-${sequence}` };
  return {
    model_name: 'silero-vad',
    id,
    parameters: { sequence_id: sequenceId, sequence_start: { bool_param: start }, sequence_end: { bool_param: end } },
    inputs: [
      { name: 'input', datatype: 'FP32', shape: [1, CONTEXT + CHUNK] },
      { name: 'sr', datatype: 'INT64', shape: [] },
    ],
    raw_input_contents: [Buffer.from(input.buffer, input.byteOffset, input.byteLength), SR],
  };
}

let rt: TestRuntime;
let client: InferenceClient;
before(async () => {
  rt = await startRuntime(SHIPPED_MODELS, { server: { grpcPort: 0 } });
  client = new InferenceClient(`127.0.0.1:${rt.runtime.grpc?.port}`);
});
after(async () => {
  client.close();
  await rt.stop();
});

test(`${SEQUENCES} concurrent VAD sequences over ${STREAMS} ModelStreamInfer streams equal their raw runs`, async () => {
  const audio = loadSpeech();
  const offsets = Array.from({ length: SEQUENCES }, (_, i) => (i % 4 === 3 ? 128 + ((i * 131) % 1900) : 0));
  const chunksByOffset = new Map<number, Float32Array[]>();
  for (const o of offsets) if (!chunksByOffset.has(o)) chunksByOffset.set(o, chunkInputs(audio, o));
  const streams = Array.from({ length: STREAMS }, () => new Stream(client));
  const results: number[][] = [];
  const failures: string[] = [];
  let started: () => void = () => undefined;
  const runSequence = async (i: number): Promise<void> => {
    const stream = streams[i % STREAMS] as Stream;
    const chunks = chunksByOffset.get(offsets[i] as number) as Float32Array[];
    const probs: number[] = [];
    for (let k = 0; k < chunks.length; k++) {
      const a = await stream.send(chunkRequest(`s${i}c${k}`, i, chunks[k] as Float32Array, k === 0, k === chunks.length - 1));
      if (a.error_message !== '') failures.push(`s${i}c${k}: ${a.error_message}`);
      const out = a.infer_response!;
      assert.deepEqual(out.outputs.map((o) => o.name), ['output'], 'the state output is left out unless asked for');
      probs.push((out.raw_output_contents[0] as Buffer).readFloatLE(0));
      if (k === 1) started();
    }
    results[i] = probs;
  };
  const running: Promise<void>[] = [];
  for (let i = 0; i < SEQUENCES; i++) {
    const next = new Promise<void>((resolve) => (started = resolve));
    running.push(runSequence(i));
    await next;
  }
  await Promise.all(running);
  assert.deepEqual(failures, []);
  for (const s of streams) s.call.end();
  for (const s of streams) assert.equal((await s.status).code, 0, 'each stream ends OK');

  const session = await ort.InferenceSession.create(MODEL_FILES.sileroVad16k, { intraOpNumThreads: 1, interOpNumThreads: 1, graphOptimizationLevel: 'all' });
  const reference = new Map<number, number[]>();
  for (const [o, chunks] of chunksByOffset) reference.set(o, await rawStream(session, chunks));
  await session.release();
  for (let i = 0; i < SEQUENCES; i++) {
    const want = reference.get(offsets[i] as number) as number[];
    const got = results[i] as number[];
    assert.equal(got.length, want.length, `sequence ${i} length`);
    for (let k = 0; k < want.length; k++) {
      assert.ok(Math.abs((got[k] as number) - (want[k] as number)) <= 1e-4, `sequence ${i} chunk ${k}: ${got[k]} vs ${want[k]}`);
    }
  }
  // Sequences of different streams went through the sequence batcher together, and all ended.
  const metrics = await (await fetch(`${rt.baseUrl}/metrics`)).text();
  const value = (name: string): number => Number(metrics.split('\n').find((l) => l.startsWith(`${name}{model="silero-vad"`))?.split(' ').pop() ?? 0);
  assert.ok(value('perch_inference_count_total') / value('perch_inference_exec_count_total') > 1, 'batches of more than one sequence');
  await waitFor(() => rt.runtime.sequences.stats().length === 0, 10_000, 'every sequence freed');
});

test('a failed request is answered in the stream with its id; the stream goes on; its sequences end with it', async () => {
  const stream = new Stream(client);
  const chunk = chunkInputs(loadSpeech(), 0)[0] as Float32Array;
  const unknown = await stream.send(chunkRequest('bad', 7, chunk, false, false));
  assert.match(unknown.error_message, /^PERCH_ERR_SEQUENCE_UNKNOWN: /);
  assert.equal(unknown.infer_response?.id, 'bad');
  const noModel = await stream.send({ ...chunkRequest('nomodel', 7, chunk, true, false), model_name: 'nope' });
  assert.match(noModel.error_message, /^PERCH_ERR_MODEL_NOT_FOUND: /);
  for (let i = 0; i < 3; i++) {
    const ok = await stream.send(chunkRequest(`open${i}`, 100 + i, chunk, true, false));
    assert.equal(ok.error_message, '');
  }
  assert.equal(rt.runtime.sequences.stats()[0]?.active, 3, 'three sequences left open');
  stream.call.end();
  assert.equal((await stream.status).code, 0);
  await waitFor(() => rt.runtime.sequences.stats().length === 0, 10_000, 'the stream\'s sequences ended with it');
});
