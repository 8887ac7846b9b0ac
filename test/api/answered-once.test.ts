// An inference is answered once, whatever its answer callback throws (issue 20). An answer is
// given from the call's resolve (inference/infer-call.ts), for a stream chunk straight from the
// sequence manager's callback: an exception out of that answer reached the manager's catch,
// which rejected the same call, so it was counted and answered a second time, as a failure; a
// throwing reject was called again and the exception came out of inferTo; on the stateless path
// it was an unhandled rejection. (The WebSocket API's own answer catches a failed send today.)
// The exception is Perch's bug: logged, once per interval.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { parseConfig } from '../../runtime/config/load.js';
import type { InferAnswer } from '../../runtime/inference/infer-call.js';
import type { InferenceOutcome, InferRequest } from '../../runtime/inference/infer-service.js';
import { Runtime } from '../../runtime/runtime.js';
import type { Tensor } from '../../runtime/tensor/tensor.js';
import { waitFor } from '../helpers/clients.js';
import { captureLogger, ERROR, type LogLine } from '../helpers/log-capture.js';
import { clsInput, randomFp32 } from '../helpers/models.js';
import { MODEL_FILES } from '../helpers/paths.js';
import { shippedModelConfig, TempRepository } from '../helpers/repository.js';

// Tensors of their own per request: a request's buffers may move to a session thread.
const chunk = (seed: number): Tensor[] => [
  randomFp32('input', [1, 576], seed, -0.3, 0.3),
  { name: 'sr', datatype: 'INT64', shape: [], data: BigInt64Array.from([16000n]) },
];

let runtime: Runtime;
let lines: LogLine[];
const outcomes: InferenceOutcome[] = [];
const unhandled: unknown[] = [];
const onUnhandled = (err: unknown): void => void unhandled.push(err);
const temp: string[] = [];

before(async () => {
  const repo = new TempRepository({
    vad: { versions: { 1: MODEL_FILES.sileroVad16k }, config: shippedModelConfig('silero-vad') },
    // Its own model: the failure log says a model's answer failures once per interval.
    vad2: { versions: { 1: MODEL_FILES.sileroVad16k }, config: shippedModelConfig('silero-vad') },
    cls: { versions: { 1: MODEL_FILES.ocrCls } },
  });
  const dataDir = mkdtempSync(join(tmpdir(), 'perch-data-'));
  temp.push(repo.dir, dataDir);
  const captured = captureLogger('info');
  lines = captured.lines;
  runtime = new Runtime(parseConfig({ dataDir, server: { host: '127.0.0.1', port: 0 }, models: { repository: repo.dir } }), { log: captured.logger });
  await runtime.start();
  runtime.service.onOutcome((o) => outcomes.push(o));
  process.on('unhandledRejection', onUnhandled);
});
after(async () => {
  process.off('unhandledRejection', onUnhandled);
  await runtime.stop();
  for (const d of temp) rmSync(d, { recursive: true, force: true });
});

/** An answer that records what it is told and throws from `throwsFrom`, as a send on a dead socket might. */
function throwingAnswer(throwsFrom: 'resolve' | 'reject'): { answer: InferAnswer; told: string[] } {
  const told: string[] = [];
  return {
    told,
    answer: {
      resolve: () => {
        told.push('resolve');
        if (throwsFrom === 'resolve') throw new Error('the client went away mid-send');
      },
      reject: (err) => {
        told.push(`reject ${err.code}`);
        if (throwsFrom === 'reject') throw new Error('the client went away mid-send');
      },
    },
  };
}

const vadRequest = (seed: number, parameters: Record<string, unknown>, model = 'vad'): InferRequest => ({ model, inputs: chunk(seed), parameters });
const answerFailures = (model: string): LogLine[] => lines.filter((l) => l.msg === 'answering an inference failed' && l.model === model);

test('a stream chunk whose answer throws is not answered again as a failure; the stream goes on', async () => {
  const { answer, told } = throwingAnswer('resolve');
  runtime.service.inferTo(vadRequest(1, { sequence_id: 's', sequence_start: true }), undefined, answer);
  // The next chunk of the same sequence runs after the first has been settled (one at a time).
  const next = await runtime.service.infer(vadRequest(2, { sequence_id: 's', sequence_end: true }));
  assert.equal(next.model_name, 'vad');
  assert.deepEqual(told, ['resolve']);
  assert.deepEqual(outcomes.filter((o) => o.model === 'vad').map((o) => o.ok), [true, true], 'each chunk counted once, as answered');
  const logged = answerFailures('vad');
  assert.equal(logged.length, 1, JSON.stringify(lines.filter((l) => l.level >= ERROR)));
  assert.equal(logged[0]!.level, ERROR);
  assert.deepEqual([logged[0]!.model, logged[0]!.version], ['vad', '1']);
  assert.match(String((logged[0]!.err as { message?: string } | undefined)?.message), /mid-send/);
});

test('a refusal whose answer throws is told once, and the exception stays with the call', () => {
  const { answer, told } = throwingAnswer('reject');
  assert.doesNotThrow(() => runtime.service.inferTo(vadRequest(3, { sequence_id: 'never-started' }, 'vad2'), undefined, answer));
  assert.deepEqual(told, ['reject PERCH_ERR_SEQUENCE_UNKNOWN']);
  assert.deepEqual(outcomes.filter((o) => o.model === 'vad2').map((o) => o.code), ['PERCH_ERR_SEQUENCE_UNKNOWN']);
  assert.equal(answerFailures('vad2').length, 1);
});

test('a stateless answer that throws is logged, not an unhandled rejection', async () => {
  const { answer, told } = throwingAnswer('resolve');
  runtime.service.inferTo({ model: 'cls', inputs: clsInput(4) }, undefined, answer);
  await waitFor(() => told.length > 0, 20_000, 'the answer');
  // Node reports an unhandled rejection once the microtasks of the turn that made it have run.
  await new Promise<void>((r) => setImmediate(r));
  assert.deepEqual(told, ['resolve']);
  assert.deepEqual(unhandled, []);
  assert.deepEqual(outcomes.filter((o) => o.model === 'cls').map((o) => o.ok), [true]);
  assert.equal(answerFailures('cls').length, 1);
});
