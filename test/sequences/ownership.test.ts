// Sequences belong to the connection that started them (issue 12, docs/reliability.md): one
// connection may hold at most server.maxSequencesPerConnection, and a WebSocket's sequences end
// when it closes (server.sequencesEndWithConnection.ws, on by default), so one client cannot keep
// the model's slots after it left. HTTP sequences (not tied by default) live on until they idle out.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { jsonTensor, waitFor, WsClient, type WsAnswer } from '../helpers/clients.js';
import { randomFp32, rawRun, releaseRawSessions } from '../helpers/models.js';
import { MODEL_FILES } from '../helpers/paths.js';
import { shippedModelConfig, TempRepository } from '../helpers/repository.js';
import { startRuntime, type TestRuntime } from '../helpers/runtime.js';
import { inferBody, postJson } from '../helpers/wire.js';
import type { Tensor } from '../../runtime/tensor/tensor.js';

const shipped = shippedModelConfig('silero-vad');
const SR: Tensor = { name: 'sr', datatype: 'INT64', shape: [], data: BigInt64Array.from([16000n]) };
const chunk = (seed: number): Tensor[] => [randomFp32('input', [1, 576], seed, -0.3, 0.3), SR];
const start = (id: string | number): Record<string, unknown> => ({ sequence_id: id, sequence_start: true });
const code = (a: WsAnswer): string => (a.body.error as { code: string } | undefined)?.code ?? 'ok';
const active = (rt: TestRuntime): number => rt.runtime.sequences.stats().reduce((n, s) => n + s.active, 0);

describe('sequence ownership', () => {
  let repo: TempRepository;
  let rt: TestRuntime;

  before(async () => {
    repo = new TempRepository({
      vad: {
        versions: { 1: MODEL_FILES.sileroVad16k },
        config: { ...shipped, batching: { ...(shipped.batching as object), maxQueueDelayMs: 0 }, sequence: { state: [{ input: 'state', output: 'stateN' }], idleTimeoutMs: 600_000, maxSequences: 6 } },
      },
    });
    rt = await startRuntime(repo.dir, { server: { maxSequencesPerConnection: 3 } });
  });
  after(async () => {
    await rt.stop();
    repo.remove();
    await releaseRawSessions();
  });

  test('a connection holds at most maxSequencesPerConnection; others still start theirs', async () => {
    const a = await WsClient.connect(rt.wsUrl);
    const b = await WsClient.connect(rt.wsUrl);
    try {
      for (const id of ['a1', 'a2', 'a3']) assert.equal(code(await a.infer('vad', chunk(1), { parameters: start(id) })), 'ok');
      const over = await a.infer('vad', chunk(1), { parameters: start('a4') });
      assert.equal(code(over), 'PERCH_ERR_SEQUENCE_LIMIT');
      assert.match(String((over.body.error as { message: string }).message), /maxSequencesPerConnection/);
      for (const id of ['b1', 'b2']) assert.equal(code(await b.infer('vad', chunk(1), { parameters: start(id) })), 'ok');
      // Ending one gives its place back to the same connection.
      assert.equal(code(await a.infer('vad', chunk(2), { parameters: { sequence_id: 'a1', sequence_end: true } })), 'ok');
      assert.equal(code(await a.infer('vad', chunk(1), { parameters: start('a4') })), 'ok');
    } finally {
      await a.close();
      await b.close();
    }
    // Both WebSockets closed: every one of their sequences ended at once, not after the idle timeout.
    await waitFor(() => active(rt) === 0, 10_000, 'the sequences of closed connections ended');
  });

  test('a thousand starts from one client cannot keep the model from others after it leaves', async () => {
    const greedy = await WsClient.connect(rt.wsUrl);
    const answers = await Promise.all(Array.from({ length: 1000 }, (_, i) => greedy.infer('vad', chunk(i), { parameters: start(`g${i}`) })));
    assert.equal(answers.filter((x) => x.ok).length, 3, 'only its own share started');
    await greedy.close();
    await waitFor(() => active(rt) === 0, 10_000, 'its sequences ended with it');
    const other = await WsClient.connect(rt.wsUrl);
    try {
      for (const id of ['o1', 'o2', 'o3']) assert.equal(code(await other.infer('vad', chunk(1), { parameters: start(id) })), 'ok');
    } finally {
      await other.close();
    }
    await waitFor(() => active(rt) === 0, 10_000);
  });

  test("another connection can neither feed, read, restart nor end a WebSocket's sequence: its state stays its own", async () => {
    const a = await WsClient.connect(rt.wsUrl);
    const b = await WsClient.connect(rt.wsUrl);
    const seqOf = (id: string, more: Record<string, unknown> = {}): Record<string, unknown> => ({ sequence_id: id, ...more });
    const probability = (x: WsAnswer): number => (x.outputs.find((t) => t.name === 'output')?.data as Float32Array)[0] as number;
    try {
      const mine: number[] = [];
      mine.push(probability(await a.infer('vad', chunk(11), { parameters: start('mic') })));
      // B names A's sequence every way there is: each one refused, nothing of A's state read or moved.
      const tries: Array<[string, Promise<WsAnswer>]> = [
        ['feed', b.infer('vad', chunk(21), { parameters: seqOf('mic') })],
        ['read the state', b.request({ op: 'infer', model: 'vad', inputs: chunk(22).map(jsonTensor), outputs: [{ name: 'stateN' }], parameters: seqOf('mic') })],
        ['restart', b.infer('vad', chunk(23), { parameters: start('mic') })],
        ['end', b.infer('vad', chunk(24), { parameters: seqOf('mic', { sequence_end: true }) })],
      ];
      for (const [what, answer] of tries) {
        const x = await answer;
        assert.equal(code(x), 'PERCH_ERR_SEQUENCE_IN_USE', what);
        assert.equal(x.outputs.length, 0, what);
      }
      // Ids are compared as strings: 7 and '7' are one sequence, A's.
      assert.equal(code(await a.infer('vad', chunk(7), { parameters: start(7) })), 'ok');
      assert.equal(code(await b.infer('vad', chunk(8), { parameters: seqOf('7') })), 'PERCH_ERR_SEQUENCE_IN_USE');
      mine.push(probability(await a.infer('vad', chunk(12), { parameters: seqOf('mic') })));
      mine.push(probability(await a.infer('vad', chunk(13), { parameters: seqOf('mic', { sequence_end: true }) })));
      // A's stream is what it would be alone: raw onnxruntime, its own chunks, the state fed back by hand.
      let state: Tensor = { name: 'state', datatype: 'FP32', shape: [2, 1, 128], data: new Float32Array(256) };
      const expected: number[] = [];
      for (const seed of [11, 12, 13]) {
        const out = await rawRun(MODEL_FILES.sileroVad16k, [...chunk(seed), state]);
        expected.push((out.find((t) => t.name === 'output')?.data as Float32Array)[0] as number);
        state = { ...(out.find((t) => t.name === 'stateN') as Tensor), name: 'state' };
      }
      assert.deepEqual(mine.map((p) => p.toFixed(5)), expected.map((p) => p.toFixed(5)));
      // A ended 'mic': the id is free, and B's own 'mic' starts from zeros.
      assert.equal(code(await b.infer('vad', chunk(11), { parameters: start('mic') })), 'ok');
      assert.equal(code(await a.infer('vad', chunk(12), { parameters: seqOf('mic') })), 'PERCH_ERR_SEQUENCE_IN_USE');
    } finally {
      await a.close();
      await b.close();
    }
    await waitFor(() => active(rt) === 0, 10_000, 'both connections\' sequences ended with them');
  });

  test('a sequence not tied to its connection (HTTP) is anyone\'s who names it, a WebSocket too', async () => {
    const r = await postJson(rt.baseUrl, '/v2/models/vad/infer', inferBody(chunk(1), { parameters: start('shared') }));
    assert.equal(r.status, 200, r.text);
    const w = await WsClient.connect(rt.wsUrl);
    try {
      assert.equal(code(await w.infer('vad', chunk(2), { parameters: { sequence_id: 'shared', sequence_end: true } })), 'ok');
    } finally {
      await w.close();
    }
    assert.equal(active(rt), 0);
  });

  test('HTTP sequences are not tied by default: they outlive the request connection', async () => {
    const r = await postJson(rt.baseUrl, '/v2/models/vad/infer', inferBody(chunk(1), { parameters: start('h1') }));
    assert.equal(r.status, 200, r.text);
    assert.equal(active(rt), 1);
    const end = await postJson(rt.baseUrl, '/v2/models/vad/infer', inferBody(chunk(2), { parameters: { sequence_id: 'h1', sequence_end: true } }));
    assert.equal(end.status, 200, end.text);
    assert.equal(active(rt), 0);
  });
});
