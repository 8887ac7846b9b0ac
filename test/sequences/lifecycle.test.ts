// Sequence start / end / idle / limit / unknown, ordering within a sequence, and a hot swap in
// the middle of live sequences. Idle time runs on a fake clock.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import ort from 'onnxruntime-node';
import { waitFor, WsClient, type WsAnswer } from '../helpers/clients.js';
import { FakeClock } from '../helpers/fake-clock.js';
import { randomFp32 } from '../helpers/models.js';
import { MODEL_FILES } from '../helpers/paths.js';
import { shippedModelConfig, TempRepository } from '../helpers/repository.js';
import { startRuntime, type TestRuntime } from '../helpers/runtime.js';
import type { Tensor } from '../../runtime/tensor/tensor.js';
import { storedEvents } from '../helpers/outbox-events.js';

// The shipped config, without its queue delay: that timer would run on the fake clock too, and
// batching is not what these tests are about.
const shipped = shippedModelConfig('silero-vad');
const config = { ...shipped, batching: { ...(shipped.batching as object), maxQueueDelayMs: 0 } };
const SR: Tensor = { name: 'sr', datatype: 'INT64', shape: [], data: BigInt64Array.from([16000n]) };
const chunk = (seed: number): Tensor[] => [randomFp32('input', [1, 576], seed, -0.3, 0.3), SR];

function seqParams(id: string, start = false, end = false): Record<string, unknown> {
  return { sequence_id: id, ...(start ? { sequence_start: true } : {}), ...(end ? { sequence_end: true } : {}) };
}

function prob(a: WsAnswer): number {
  assert.ok(a.ok, JSON.stringify(a.body));
  return (a.outputs.find((t) => t.name === 'output')!.data as Float32Array)[0] as number;
}

function code(a: WsAnswer): string {
  return (a.body.error as { code: string } | undefined)?.code ?? 'ok';
}

/** The reference: the chunks through raw onnxruntime with the state fed back by hand. */
async function reference(seeds: number[]): Promise<number[]> {
  const s = await ort.InferenceSession.create(MODEL_FILES.sileroVad16k, { intraOpNumThreads: 1 });
  let state = new ort.Tensor('float32', new Float32Array(256), [2, 1, 128]);
  const out: number[] = [];
  for (const seed of seeds) {
    const r = await s.run({ input: new ort.Tensor('float32', (chunk(seed)[0]!.data as Float32Array).slice(), [1, 576]), state, sr: new ort.Tensor('int64', BigInt64Array.from([16000n]), []) });
    out.push((r.output!.data as Float32Array)[0] as number);
    state = r.stateN as typeof state;
  }
  await s.release();
  return out;
}

describe('sequence lifecycle', () => {
  const clock = new FakeClock();
  let repo: TempRepository;
  let rt: TestRuntime;
  let ws: WsClient;

  before(async () => {
    repo = new TempRepository({
      vad: { versions: { 1: MODEL_FILES.sileroVad16k }, config: { ...config, sequence: { state: [{ input: 'state', output: 'stateN' }], idleTimeoutMs: 1000, maxSequences: 3 } } },
    });
    rt = await startRuntime(repo.dir, {}, clock);
    ws = await WsClient.connect(rt.wsUrl);
  });
  after(async () => {
    await ws.close();
    await rt.stop();
    repo.remove();
  });

  test('start, continue with the kept state, end frees it', async () => {
    const seeds = [11, 12, 13, 14];
    const want = await reference(seeds);
    const got: number[] = [];
    for (let i = 0; i < seeds.length; i++) {
      got.push(prob(await ws.infer('vad', chunk(seeds[i]!), { parameters: seqParams('a', i === 0, i === seeds.length - 1) })));
    }
    got.forEach((p, i) => assert.ok(Math.abs(p - want[i]!) <= 1e-6, `chunk ${i}: ${p} vs ${want[i]}`));
    assert.equal(code(await ws.infer('vad', chunk(15), { parameters: seqParams('a') })), 'PERCH_ERR_SEQUENCE_UNKNOWN');
    assert.equal(rt.runtime.sequences.stats().length, 0);
  });

  test('answers leave out the state unless asked; requests must not send it', async () => {
    const a = await ws.infer('vad', chunk(1), { parameters: seqParams('b', true) });
    assert.deepEqual(a.outputs.map((t) => t.name), ['output']);
    const withState = await ws.request({
      op: 'infer', model: 'vad', parameters: seqParams('b'), outputs: [{ name: 'output' }, { name: 'stateN' }],
      inputs: [{ name: 'input', shape: [1, 576], datatype: 'FP32', data: new Array(576).fill(0) }, { name: 'sr', shape: [], datatype: 'INT64', data: [16000] }],
    });
    assert.ok(withState.ok);
    assert.deepEqual((withState.body.result as { outputs: Array<{ name: string; shape: number[] }> }).outputs.map((o) => [o.name, o.shape]), [['output', [1, 1]], ['stateN', [2, 1, 128]]]);
    const sendsState = await ws.infer('vad', [...chunk(2), randomFp32('state', [2, 1, 128], 3)], { parameters: seqParams('b') });
    assert.equal(code(sendsState), 'PERCH_ERR_UNKNOWN_INPUT');
    assert.equal(code(await ws.infer('vad', chunk(1))), 'PERCH_ERR_INVALID_PARAMETER', 'sequence_id is required');
    assert.equal(code(await ws.infer('vad', chunk(1), { parameters: { sequence_id: {} } })), 'PERCH_ERR_INVALID_PARAMETER');
    assert.equal(code(await ws.infer('vad', [randomFp32('input', [2, 576], 1), SR], { parameters: seqParams('c', true) })), 'PERCH_ERR_SHAPE_MISMATCH');
    assert.ok((await ws.infer('vad', chunk(1), { parameters: seqParams('b', false, true) })).ok);
  });

  test('a sequence idle past idleTimeoutMs is freed', async () => {
    assert.ok((await ws.infer('vad', chunk(1), { parameters: seqParams('idle', true) })).ok);
    clock.advance(999);
    assert.ok((await ws.infer('vad', chunk(2), { parameters: seqParams('idle') })).ok, 'still alive: each request restarts the idle clock');
    clock.advance(1000);
    assert.equal(code(await ws.infer('vad', chunk(3), { parameters: seqParams('idle') })), 'PERCH_ERR_SEQUENCE_UNKNOWN');
  });

  test('more live sequences than maxSequences: PERCH_ERR_SEQUENCE_LIMIT, and an event', async () => {
    for (const id of ['l1', 'l2', 'l3']) assert.ok((await ws.infer('vad', chunk(1), { parameters: seqParams(id, true) })).ok);
    const over = await ws.infer('vad', chunk(1), { parameters: seqParams('l4', true) });
    assert.equal(code(over), 'PERCH_ERR_SEQUENCE_LIMIT');
    await waitFor(async () => (await storedEvents(rt.runtime.store.outbox, 'sequence.limit')).length === 1);
    assert.ok((await ws.infer('vad', chunk(1), { parameters: seqParams('l1', false, true) })).ok);
    assert.ok((await ws.infer('vad', chunk(1), { parameters: seqParams('l4', true, true) })).ok, 'a freed place can be taken');
    clock.advance(1000); // l2, l3 idle out
    assert.equal(rt.runtime.sequences.stats().length, 0);
  });

  test('requests of one sequence run in arrival order, one at a time, even when sent at once', async () => {
    const seeds = Array.from({ length: 24 }, (_, i) => 100 + i);
    const want = await reference(seeds);
    const execsBefore = await execCount(rt);
    const answers = await Promise.all(seeds.map((s, i) => ws.infer('vad', chunk(s), { parameters: seqParams('pipelined', i === 0, i === seeds.length - 1), binary: i % 2 === 0 })));
    answers.map(prob).forEach((p, i) => assert.ok(Math.abs(p - want[i]!) <= 1e-6, `chunk ${i} out of order or wrong state`));
    assert.equal((await execCount(rt)) - execsBefore, seeds.length, 'never two chunks of one sequence in a batch');
  });

  test('a chunk refused in the middle of a pipelined sequence: its error, the state as it was, the chunks behind it in order', async () => {
    // The refusal happens as the chunk before it is answered (the sequence hands on its next
    // request from the batcher's callback): the loop goes on to the chunks behind it.
    const seeds = Array.from({ length: 12 }, (_, i) => 200 + i);
    const bad = new Set([4, 5, 9]);
    const want = await reference(seeds.filter((_, i) => !bad.has(i)));
    const wrong: Tensor[] = [randomFp32('input', [1, 575], 1, -0.3, 0.3), SR]; // 575 samples: not the model's 576
    const answers = await Promise.all(seeds.map((s, i) => ws.infer('vad', bad.has(i) ? wrong : chunk(s), { parameters: seqParams('holes', i === 0, i === seeds.length - 1), binary: true })));
    assert.deepEqual(answers.map(code), seeds.map((_, i) => (bad.has(i) ? 'PERCH_ERR_SHAPE_MISMATCH' : 'ok')));
    answers.filter((_, i) => !bad.has(i)).map(prob).forEach((p, i) => assert.ok(Math.abs(p - want[i]!) <= 1e-6, `chunk ${i} out of order or wrong state`));
    assert.equal(rt.runtime.sequences.stats().find((m) => m.model === 'vad'), undefined, 'the end freed it');
  });

  test('a start that fails leaves no sequence: what follows it must start again, and its slot is free', async () => {
    const wrong: Tensor[] = [randomFp32('input', [1, 575], 1, -0.3, 0.3), SR]; // 575 samples: not the model's 576
    // Refused at hand-over (as a full queue refuses it): the state had been set to zeros already.
    assert.equal(code(await ws.infer('vad', wrong, { parameters: seqParams('failed', true) })), 'PERCH_ERR_SHAPE_MISMATCH');
    assert.equal(rt.runtime.sequences.stats().find((m) => m.model === 'vad'), undefined, 'no live sequence left');
    assert.equal(code(await ws.infer('vad', chunk(2), { parameters: seqParams('failed') })), 'PERCH_ERR_SEQUENCE_UNKNOWN');
    // Pipelined behind a failed start: unknown, not fed from zeros.
    const answers = await Promise.all([
      ws.infer('vad', [...chunk(1), randomFp32('state', [2, 1, 128], 3)], { parameters: seqParams('failed', true) }),
      ws.infer('vad', chunk(2), { parameters: seqParams('failed') }),
      ws.infer('vad', chunk(3), { parameters: seqParams('failed', true) }),
      ws.infer('vad', chunk(4), { parameters: seqParams('failed', false, true) }),
    ]);
    assert.deepEqual(answers.map(code), ['PERCH_ERR_UNKNOWN_INPUT', 'PERCH_ERR_SEQUENCE_UNKNOWN', 'ok', 'ok']);
    const fresh = await reference([3, 4]);
    assert.ok(Math.abs(prob(answers[2]!) - fresh[0]!) <= 1e-6 && Math.abs(prob(answers[3]!) - fresh[1]!) <= 1e-6, 'the start after it begins from zero state');
    // A restart of a live sequence that fails ends it too: its old state was already dropped.
    assert.ok((await ws.infer('vad', chunk(1), { parameters: seqParams('live', true) })).ok);
    assert.equal(code(await ws.infer('vad', wrong, { parameters: seqParams('live', true) })), 'PERCH_ERR_SHAPE_MISMATCH');
    assert.equal(code(await ws.infer('vad', chunk(2), { parameters: seqParams('live') })), 'PERCH_ERR_SEQUENCE_UNKNOWN');
    assert.equal(rt.runtime.sequences.stats().find((m) => m.model === 'vad'), undefined);
    // The slots are all there: maxSequences (3) start.
    for (const id of ['f1', 'f2', 'f3']) assert.ok((await ws.infer('vad', chunk(1), { parameters: seqParams(id, true) })).ok);
    for (const id of ['f1', 'f2', 'f3']) assert.ok((await ws.infer('vad', chunk(2), { parameters: seqParams(id, false, true) })).ok);
  });

  test('requests sent behind an end start over: a start begins a new sequence, anything else is unknown', async () => {
    const answers = await Promise.all([
      ws.infer('vad', chunk(1), { parameters: seqParams('over', true) }),
      ws.infer('vad', chunk(2), { parameters: seqParams('over', false, true) }),
      ws.infer('vad', chunk(3), { parameters: seqParams('over') }),
      ws.infer('vad', chunk(4), { parameters: seqParams('over', true) }),
      ws.infer('vad', chunk(5), { parameters: seqParams('over', false, true) }),
    ]);
    assert.deepEqual(answers.map(code), ['ok', 'ok', 'PERCH_ERR_SEQUENCE_UNKNOWN', 'ok', 'ok']);
    const fresh = await reference([4, 5]);
    assert.ok(Math.abs(prob(answers[3]!) - fresh[0]!) <= 1e-6 && Math.abs(prob(answers[4]!) - fresh[1]!) <= 1e-6, 'the new sequence starts from zero state');
    assert.equal(rt.runtime.sequences.stats().find((m) => m.model === 'vad'), undefined);
  });
});

async function execCount(rt: TestRuntime): Promise<number> {
  const m = await (await fetch(`${rt.baseUrl}/metrics`)).text();
  return Number(m.split('\n').find((l) => l.startsWith('perch_inference_exec_count_total{'))?.split(' ').pop() ?? 0);
}

test('a hot swap leaves live sequences on their version; it is released when the last one ends', async () => {
  const repo = new TempRepository({ vad: { versions: { 1: MODEL_FILES.sileroVad16k }, config } });
  const rt = await startRuntime(repo.dir);
  const ws = await WsClient.connect(rt.wsUrl);
  try {
    const seeds = [21, 22, 23, 24];
    const want = await reference(seeds);
    const old: number[] = [prob(await ws.infer('vad', chunk(seeds[0]!), { parameters: seqParams('old', true) }))];
    repo.addVersion('vad', 2, MODEL_FILES.sileroVad16k);
    assert.equal((await fetch(`${rt.baseUrl}/v2/repository/models/vad/load`, { method: 'POST' })).status, 200);
    const fresh = await ws.infer('vad', chunk(1), { parameters: seqParams('new', true) });
    assert.equal((fresh.body.result as { model_version: string }).model_version, '2', 'new sequences start on the new version');
    assert.equal(rt.runtime.registry.drainingCount, 1, 'version 1 is kept while a sequence lives on it');
    for (let i = 1; i < seeds.length; i++) {
      const a = await ws.infer('vad', chunk(seeds[i]!), { parameters: seqParams('old', false, i === seeds.length - 1) });
      assert.equal((a.body.result as { model_version: string }).model_version, '1', 'a live sequence stays on its version');
      old.push(prob(a));
    }
    old.forEach((p, i) => assert.ok(Math.abs(p - want[i]!) <= 1e-6, `chunk ${i} across the swap`));
    // The old version's last sequence ended: its session is released.
    await waitFor(() => rt.runtime.registry.drainingCount === 0, 20_000, 'version 1 released');
    assert.deepEqual(rt.runtime.registry.statusOf('vad').served, [2]);
  } finally {
    await ws.close();
    await rt.stop();
    repo.remove();
  }
});
