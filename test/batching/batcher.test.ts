// The batcher on a fake clock: no sleeps, time moves only when the test says so.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Batcher, type BatchRun, type BatcherOptions } from '../../runtime/batching/batcher.js';
import { PerchError } from '../../runtime/base/errors.js';
import { ClientScope } from '../../runtime/inference/client-scope.js';
import { FakeClock } from '../helpers/fake-clock.js';

interface Job {
  id: string;
}

/** A batcher whose batches finish only when the test releases them. */
function harness(opts: Partial<BatcherOptions> = {}) {
  const clock = new FakeClock();
  const runs: Array<{ ids: string[]; queuedMs: number[]; finish: () => void; fail: (e: Error) => void }> = [];
  const batcher = new Batcher<Job, string>(
    { maxBatchSize: 8, maxQueueDelayMs: 0, preferredBatchSizes: [], maxQueueSize: 100, priorityLevels: 5, concurrency: 1, ...opts },
    (run: BatchRun<Job>) =>
      new Promise<string[]>((resolve, reject) => {
        const ids = run.payloads.map((p) => p.id);
        runs.push({ ids, queuedMs: run.queuedMs, finish: () => resolve(ids.map((id) => `done ${id}`)), fail: reject });
      }),
    clock,
  );
  const submit = (id: string, o: { items?: number; key?: string; priority?: number; timeoutMs?: number | null; bytes?: number } = {}) =>
    batcher.submit({ id }, { items: o.items ?? 1, groupKey: o.key ?? 'k', priority: o.priority ?? 3, timeoutMs: o.timeoutMs ?? null, bytes: o.bytes });
  return { clock, runs, batcher, submit };
}

const tick = () => new Promise((r) => setImmediate(r));

describe('batcher', () => {
  test('a lone request runs at once when a slot is free (delay 0)', async () => {
    const h = harness();
    const p = h.submit('a');
    assert.deepEqual(h.runs.map((r) => r.ids), [['a']]);
    h.runs[0]!.finish();
    assert.equal(await p, 'done a');
  });

  test('requests queued while the slot is busy form one batch, up to maxBatchSize items', async () => {
    const h = harness({ maxBatchSize: 4 });
    const all = ['a', 'b', 'c', 'd', 'e', 'f'].map((id) => h.submit(id));
    assert.equal(h.runs.length, 1);
    h.runs[0]!.finish();
    await tick();
    assert.deepEqual(h.runs[1]!.ids, ['b', 'c', 'd', 'e']);
    h.runs[1]!.finish();
    await tick();
    assert.deepEqual(h.runs[2]!.ids, ['f']);
    h.runs[2]!.finish();
    assert.deepEqual(await Promise.all(all), ['a', 'b', 'c', 'd', 'e', 'f'].map((id) => `done ${id}`));
  });

  test('items count, not requests: a request of 3 items fills 3 places', async () => {
    const h = harness({ maxBatchSize: 4 });
    void h.submit('busy');
    void h.submit('x', { items: 3 });
    void h.submit('y', { items: 2 });
    void h.submit('z', { items: 1 });
    h.runs[0]!.finish();
    await tick();
    assert.deepEqual(h.runs[1]!.ids, ['x', 'z']); // y would overflow 4; z fits
  });

  test('maxQueueDelayMs waits for company, then dispatches what it has', () => {
    const h = harness({ maxQueueDelayMs: 10 });
    void h.submit('a');
    h.clock.advance(4);
    void h.submit('b');
    assert.equal(h.runs.length, 0);
    h.clock.advance(5);
    assert.equal(h.runs.length, 0);
    h.clock.advance(1);
    assert.deepEqual(h.runs[0]!.ids, ['a', 'b']);
    assert.deepEqual(h.runs[0]!.queuedMs, [10, 6]);
  });

  test('a full batch does not wait for the delay', () => {
    const h = harness({ maxQueueDelayMs: 1000, maxBatchSize: 3 });
    void h.submit('a');
    void h.submit('b');
    assert.equal(h.runs.length, 0);
    void h.submit('c');
    assert.deepEqual(h.runs[0]!.ids, ['a', 'b', 'c']);
  });

  test('a preferred batch size is dispatched at once during the delay', () => {
    const h = harness({ maxQueueDelayMs: 1000, maxBatchSize: 8, preferredBatchSizes: [2] });
    void h.submit('a');
    assert.equal(h.runs.length, 0);
    void h.submit('b');
    assert.deepEqual(h.runs[0]!.ids, ['a', 'b']);
  });

  test('requests with different group keys are never in the same batch', async () => {
    const h = harness();
    void h.submit('busy');
    for (const [id, key] of [['a1', 'A'], ['b1', 'B'], ['a2', 'A'], ['b2', 'B']] as const) void h.submit(id, { key });
    for (let i = 0; i < 3; i++) {
      h.runs[i]!.finish();
      await tick();
    }
    assert.deepEqual(h.runs.map((r) => r.ids), [['busy'], ['a1', 'a2'], ['b1', 'b2']]);
  });

  test('higher priority (lower number) runs first; FIFO within a level', async () => {
    const h = harness({ maxBatchSize: 1 });
    void h.submit('busy');
    void h.submit('low1', { priority: 5 });
    void h.submit('high', { priority: 1 });
    void h.submit('low2', { priority: 5 });
    void h.submit('mid', { priority: 3 });
    for (let i = 0; i < 4; i++) {
      h.runs[i]!.finish();
      await tick();
    }
    assert.deepEqual(h.runs.map((r) => r.ids[0]), ['busy', 'high', 'mid', 'low1', 'low2']);
  });

  test('queue full: PERCH_ERR_QUEUE_FULL, and the queued ones still run', async () => {
    const h = harness({ maxQueueSize: 2, maxBatchSize: 1 });
    void h.submit('busy');
    const a = h.submit('a');
    const b = h.submit('b');
    await assert.rejects(h.submit('c'), (e: PerchError) => e.code === 'PERCH_ERR_QUEUE_FULL');
    for (let i = 0; i < 3; i++) {
      h.runs[i]!.finish();
      await tick();
    }
    assert.deepEqual(await Promise.all([a, b]), ['done a', 'done b']);
  });

  test('maxQueueBytes: a queue holding that many bytes refuses more; what leaves the queue makes room', async () => {
    const h = harness({ maxQueueSize: 100, maxQueueBytes: 1000, maxBatchSize: 2 });
    void h.submit('busy', { bytes: 5000 }); // runs at once: running bytes do not count
    assert.equal(h.batcher.bytes, 0);
    const a = h.submit('a', { bytes: 600 });
    assert.equal(h.batcher.fullError(), null);
    const b = h.submit('b', { bytes: 600 }); // taken: the queue held 600 < 1000 (one request may overshoot)
    assert.equal(h.batcher.bytes, 1200);
    assert.equal(h.batcher.fullError()?.code, 'PERCH_ERR_QUEUE_FULL');
    await assert.rejects(h.submit('c', { bytes: 1 }), (e: PerchError) => e.code === 'PERCH_ERR_QUEUE_FULL' && /maxQueueBytes 1000/.test(e.message));
    assert.equal(h.batcher.depth, 2);
    h.runs[0]!.finish();
    await tick();
    assert.deepEqual(h.runs[1]!.ids, ['a', 'b']);
    assert.equal(h.batcher.bytes, 0);
    assert.equal(h.batcher.fullError(), null);
    h.runs[1]!.finish();
    assert.deepEqual(await Promise.all([a, b]), ['done a', 'done b']);
  });

  test('maxQueueBytes: a request larger than the bound is taken into an empty queue; a timed-out one gives its bytes back', async () => {
    const h = harness({ maxQueueBytes: 1000, maxBatchSize: 1 });
    void h.submit('busy');
    const big = h.submit('big', { bytes: 50_000 });
    assert.equal(h.batcher.bytes, 50_000);
    await assert.rejects(h.submit('small', { bytes: 10 }), (e: PerchError) => e.code === 'PERCH_ERR_QUEUE_FULL');
    h.runs[0]!.finish();
    await tick();
    assert.deepEqual(h.runs[1]!.ids, ['big']);
    const timed = h.submit('timed', { bytes: 700, timeoutMs: 5 });
    assert.equal(h.batcher.bytes, 700);
    h.clock.advance(5);
    await assert.rejects(timed, (e: PerchError) => e.code === 'PERCH_ERR_TIMEOUT');
    assert.equal(h.batcher.bytes, 0);
    h.runs[1]!.finish();
    assert.equal(await big, 'done big');
  });

  test('maxBatchBytes: no batch holds more input bytes than the bound; smaller later requests fill in; one larger than it runs alone', async () => {
    const h = harness({ maxBatchSize: 4, maxBatchBytes: 1000 });
    const sizes: Record<string, number> = { busy: 10, a: 400, b: 400, c: 400, d: 150, e: 1500, f: 300, g: 300 };
    const all = Object.entries(sizes).map(([id, bytes]) => h.submit(id, { bytes }));
    for (let i = 0; i < 4; i++) {
      h.runs[i]!.finish();
      await tick();
    }
    assert.deepEqual(h.runs.map((r) => r.ids), [['busy'], ['a', 'b', 'd'], ['c', 'f', 'g'], ['e']]);
    for (const r of h.runs) {
      const bytes = r.ids.reduce((n, id) => n + (sizes[id] as number), 0);
      assert.ok(r.ids.length === 1 || bytes <= 1000, `batch ${r.ids.join(',')} holds ${bytes} bytes`);
    }
    assert.equal((await Promise.all(all)).length, 8);
  });

  test('maxBatchBytes: a batch full by bytes goes at once, without waiting for maxQueueDelayMs; live configure changes the bound', async () => {
    const h = harness({ maxBatchSize: 8, maxQueueDelayMs: 1000, maxBatchBytes: 1000 });
    void h.submit('a', { bytes: 600 });
    assert.equal(h.runs.length, 0, 'waits for company');
    void h.submit('b', { bytes: 600 });
    assert.deepEqual(h.runs.map((r) => r.ids), [['a']], 'b cannot join a: a goes now');
    h.runs[0]!.finish();
    await tick();
    h.batcher.configure({ maxBatchBytes: undefined });
    void h.submit('c', { bytes: 600 });
    assert.equal(h.runs.length, 1, 'unbounded again: b and c wait for company');
    h.clock.advance(1000);
    assert.deepEqual(h.runs[1]!.ids, ['b', 'c']);
  });

  test('a request that times out in the queue is rejected and never run', async () => {
    const h = harness({ maxBatchSize: 8 });
    void h.submit('busy');
    const late = h.submit('late', { timeoutMs: 5 });
    const patient = h.submit('patient');
    h.clock.advance(5);
    await assert.rejects(late, (e: PerchError) => e.code === 'PERCH_ERR_TIMEOUT');
    assert.equal(h.batcher.depth, 1);
    h.runs[0]!.finish();
    await tick();
    assert.deepEqual(h.runs[1]!.ids, ['patient']);
    h.runs[1]!.finish();
    assert.equal(await patient, 'done patient');
    assert.equal(h.clock.pending, 0, 'no timer left behind');
  });

  test('a dispatched request is not timed out later', async () => {
    const h = harness();
    const p = h.submit('a', { timeoutMs: 5 });
    h.clock.advance(50);
    h.runs[0]!.finish();
    assert.equal(await p, 'done a');
  });

  test('concurrency N runs N batches at once', () => {
    const h = harness({ concurrency: 2, maxBatchSize: 1 });
    void h.submit('a');
    void h.submit('b');
    void h.submit('c');
    assert.deepEqual(h.runs.map((r) => r.ids), [['a'], ['b']]);
  });

  test('a failed batch rejects each of its requests and the next batch still runs', async () => {
    const h = harness({ maxBatchSize: 2 });
    void h.submit('busy');
    const a = h.submit('a');
    const b = h.submit('b');
    const c = h.submit('c');
    h.runs[0]!.finish();
    await tick();
    h.runs[1]!.fail(new PerchError('PERCH_ERR_INFERENCE_FAILED', 'boom'));
    await assert.rejects(a, /boom/);
    await assert.rejects(b, /boom/);
    h.runs[2]!.finish();
    assert.equal(await c, 'done c');
  });

  test('maxBatchSize 0: each request runs alone', async () => {
    const h = harness({ maxBatchSize: 0 });
    void h.submit('busy');
    void h.submit('a');
    void h.submit('b');
    h.runs[0]!.finish();
    await tick();
    assert.deepEqual(h.runs[1]!.ids, ['a']);
  });

  test('drain waits for queued and running work; close rejects what is queued', async () => {
    const h = harness({ maxBatchSize: 1 });
    void h.submit('busy');
    const queued = h.submit('q');
    let drained = false;
    void h.batcher.drain().then(() => (drained = true));
    h.runs[0]!.finish();
    await tick();
    assert.equal(drained, false);
    h.runs[1]!.finish();
    await queued;
    await tick();
    assert.equal(drained, true);
    void h.submit('busy2');
    const doomed = h.submit('doomed');
    h.batcher.close(new PerchError('PERCH_ERR_SHUTTING_DOWN'));
    await assert.rejects(doomed, (e: PerchError) => e.code === 'PERCH_ERR_SHUTTING_DOWN');
  });

  test('lookahead: a busy slot gets one more batch once it is big enough; a small one waits', async () => {
    const h = harness({ lookahead: true, maxBatchSize: 8, preferredBatchSizes: [4, 8] });
    void h.submit('busy');
    for (const id of ['a', 'b', 'c']) void h.submit(id);
    assert.equal(h.runs.length, 1, 'three queued are fewer than the smallest preferred size (4)');
    const d = h.submit('d', { timeoutMs: 5 });
    assert.deepEqual(h.runs.map((r) => r.ids), [['busy'], ['a', 'b', 'c', 'd']], 'four: handed over at once');
    for (const id of ['e', 'f', 'g', 'h', 'i']) void h.submit(id);
    assert.equal(h.runs.length, 2, 'at most one lookahead batch per slot');
    h.clock.advance(50);
    h.runs[0]!.finish();
    h.runs[1]!.finish();
    assert.equal(await d, 'done d', 'a handed-over request is not timed out');
    await tick();
    assert.deepEqual(h.runs.slice(2).map((r) => r.ids), [['e', 'f', 'g', 'h', 'i']]);
  });

  test('lookahead off (the default, and inline sessions), or one-request batches: nothing beyond the free slots', () => {
    for (const opts of [{ maxBatchSize: 8, preferredBatchSizes: [4, 8] }, { lookahead: true, maxBatchSize: 1 }]) {
      const h = harness(opts);
      for (const id of ['busy', 'a', 'b', 'c', 'd', 'e']) void h.submit(id);
      assert.equal(h.runs.length, 1, JSON.stringify(opts));
    }
  });

  test('lookahead with two sessions: a request goes to a session that has gone idle while the other holds two batches', async () => {
    // Two sessions picked least-busy first, as ModelInstance does; idle slots come from them.
    const clock = new FakeClock();
    const sessions = [{ batches: [] as Array<() => void> }, { batches: [] as Array<() => void> }];
    const ran: string[][] = [];
    const batcher = new Batcher<Job, string>(
      { maxBatchSize: 8, maxQueueDelayMs: 0, preferredBatchSizes: [4], maxQueueSize: 100, priorityLevels: 1, concurrency: 2, lookahead: true },
      (run) => new Promise<string[]>((resolve) => {
        const s = sessions.reduce((a, b) => (b.batches.length < a.batches.length ? b : a));
        const ids = run.payloads.map((p) => p.id);
        ran.push(ids);
        s.batches.push(() => {
          s.batches.shift();
          resolve(ids);
        });
      }),
      clock,
      () => sessions.filter((s) => s.batches.length === 0).length,
    );
    const submit = (id: string) => batcher.submit({ id }, { items: 1, groupKey: 'k', priority: 1, timeoutMs: null });
    void submit('a');
    void submit('b');
    for (const id of ['c1', 'c2', 'c3', 'c4', 'd1', 'd2', 'd3', 'd4']) void submit(id);
    assert.deepEqual(ran.map((r) => r.length), [1, 1, 4, 4], 'one batch each, then one lookahead batch each');
    const second = sessions[1]!;
    second.batches[0]!();
    await tick();
    second.batches[0]!();
    await tick();
    assert.equal(second.batches.length, 0, 'the second session is idle; the first still holds two batches');
    const late = submit('late');
    assert.deepEqual(ran.at(-1), ['late'], 'dispatched at once to the idle session, not held for the busy one');
    second.batches[0]!();
    assert.equal(await late, 'late');
  });

  test('enqueue: callbacks instead of a promise; a refusal is returned and calls nothing', async () => {
    const h = harness({ maxQueueSize: 2 });
    const told: string[] = [];
    const tellTo = (id: string) => [(r: string) => told.push(`${id}: ${r}`), (e: Error) => told.push(`${id}: ${(e as PerchError).code}`)] as const;
    assert.equal(h.batcher.enqueue({ id: 'a' }, { items: 1, groupKey: 'k', priority: 3, timeoutMs: null }, ...tellTo('a')), null);
    assert.equal(h.batcher.enqueue({ id: 'b' }, { items: 1, groupKey: 'k', priority: 3, timeoutMs: null }, ...tellTo('b')), null);
    assert.equal(h.batcher.enqueue({ id: 'c' }, { items: 1, groupKey: 'k', priority: 3, timeoutMs: 50 }, ...tellTo('c')), null);
    const full = h.batcher.enqueue({ id: 'd' }, { items: 1, groupKey: 'k', priority: 3, timeoutMs: null }, ...tellTo('d'));
    assert.equal(full?.code, 'PERCH_ERR_QUEUE_FULL');
    assert.equal(h.batcher.enqueue({ id: 'e' }, { items: 1, groupKey: 'k', priority: 9, timeoutMs: null }, ...tellTo('e'))?.code, 'PERCH_ERR_QUEUE_FULL', 'checked in submit\'s order');
    h.runs[0]!.finish();
    await tick();
    assert.deepEqual(told, ['a: done a'], 'told from the batch\'s settlement');
    h.clock.advance(50); // c was taken into b's batch already: its timeout no longer applies
    h.runs[1]!.fail(new PerchError('PERCH_ERR_INTERNAL', 'session failed'));
    await tick();
    assert.deepEqual(told, ['a: done a', 'b: PERCH_ERR_INTERNAL', 'c: PERCH_ERR_INTERNAL']);
    h.batcher.close(new PerchError('PERCH_ERR_SHUTTING_DOWN'));
    assert.equal(h.batcher.enqueue({ id: 'f' }, { items: 1, groupKey: 'k', priority: 3, timeoutMs: null }, ...tellTo('f'))?.code, 'PERCH_ERR_SHUTTING_DOWN');
    assert.equal(told.length, 3, 'refusals call nothing');
  });

  test('enqueue with a scope already closed: rejected at once, from inside enqueue', () => {
    const h = harness();
    void h.submit('busy');
    const closed = new ClientScope({ maxSequences: 1, sequencesEndWithConnection: true });
    closed.close();
    const told: string[] = [];
    const refused = h.batcher.enqueue({ id: 'x' }, { items: 1, groupKey: 'k', priority: 3, timeoutMs: null, scope: closed }, () => told.push('resolved'), (e) => told.push((e as PerchError).code));
    assert.equal(refused, null);
    assert.deepEqual(told, ['PERCH_ERR_CLIENT_GONE']);
    assert.equal(h.batcher.depth, 0, 'it left the queue');
  });

  test('a queued request is dropped when its scope closes; once dispatched, a close no longer reaches it', async () => {
    const h = harness({ maxBatchSize: 1 });
    const scope = new ClientScope({ maxSequences: 1, sequencesEndWithConnection: true });
    const other = new ClientScope({ maxSequences: 1, sequencesEndWithConnection: true });
    const told: string[] = [];
    const enqueue = (id: string, s: ClientScope) =>
      h.batcher.enqueue({ id }, { items: 1, groupKey: 'k', priority: 3, timeoutMs: null, scope: s }, (r) => told.push(r), (e) => told.push(`${id}: ${(e as PerchError).code}`));
    enqueue('running', scope); // dispatched at once: no longer watches the scope
    enqueue('a', scope);
    enqueue('b', other);
    enqueue('c', scope);
    scope.close();
    assert.deepEqual(told, ['a: PERCH_ERR_CLIENT_GONE', 'c: PERCH_ERR_CLIENT_GONE']);
    assert.equal(h.batcher.depth, 1, 'b of the other scope stays queued');
    h.runs[0]!.finish();
    await tick();
    assert.deepEqual(h.runs.map((r) => r.ids), [['running'], ['b']]);
    other.close(); // b is running: nothing more is told about it
    h.runs[1]!.finish();
    await tick();
    assert.deepEqual(told, ['a: PERCH_ERR_CLIENT_GONE', 'c: PERCH_ERR_CLIENT_GONE', 'done running', 'done b']);
  });

  test('the delay timer is armed once per head: requests joining it keep it, a new head arms its own', () => {
    const h = harness({ maxQueueDelayMs: 10 });
    void h.submit('a');
    assert.equal(h.clock.pending, 1);
    h.clock.advance(3);
    void h.submit('b');
    h.clock.advance(3);
    void h.submit('c');
    assert.equal(h.clock.pending, 1, 'one timer, still the head\'s');
    assert.equal(h.clock.nextDueIn(), 4, "due at the head's enqueuedAt + maxQueueDelayMs");
    void h.submit('urgent', { priority: 1 }); // a new head: its own wait
    assert.equal(h.clock.pending, 1);
    assert.equal(h.clock.nextDueIn(), 10);
    h.clock.advance(9);
    assert.equal(h.runs.length, 0);
    h.clock.advance(1);
    assert.deepEqual(h.runs[0]!.ids, ['urgent', 'a', 'b', 'c']);
    assert.deepEqual(h.runs[0]!.queuedMs, [10, 16, 13, 10]);
    assert.equal(h.clock.pending, 0);
  });
});
