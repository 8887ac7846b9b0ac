// Sequences belong to the connection that started them (issue 12, docs/reliability.md): one
// connection may hold at most server.maxSequencesPerConnection, and a WebSocket's sequences end
// when it closes (server.sequencesEndWithConnection.ws, on by default), so one client cannot keep
// the model's slots after it left. HTTP sequences (not tied by default) live on until they idle out.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { waitFor, WsClient, type WsAnswer } from '../helpers/clients.js';
import { randomFp32 } from '../helpers/models.js';
import { MODEL_FILES } from '../helpers/paths.js';
import { shippedModelConfig, TempRepository } from '../helpers/repository.js';
import { startRuntime, type TestRuntime } from '../helpers/runtime.js';
import { inferBody, postJson } from '../helpers/wire.js';
import type { Tensor } from '../../runtime/tensor/tensor.js';

const shipped = shippedModelConfig('silero-vad');
const SR: Tensor = { name: 'sr', datatype: 'INT64', shape: [], data: BigInt64Array.from([16000n]) };
const chunk = (seed: number): Tensor[] => [randomFp32('input', [1, 576], seed, -0.3, 0.3), SR];
const start = (id: string): Record<string, unknown> => ({ sequence_id: id, sequence_start: true });
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

  test('HTTP sequences are not tied by default: they outlive the request connection', async () => {
    const r = await postJson(rt.baseUrl, '/v2/models/vad/infer', inferBody(chunk(1), { parameters: start('h1') }));
    assert.equal(r.status, 200, r.text);
    assert.equal(active(rt), 1);
    const end = await postJson(rt.baseUrl, '/v2/models/vad/infer', inferBody(chunk(2), { parameters: { sequence_id: 'h1', sequence_end: true } }));
    assert.equal(end.status, 200, end.text);
    assert.equal(active(rt), 0);
  });
});
