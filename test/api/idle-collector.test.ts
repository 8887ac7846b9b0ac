// Memory back after a burst (runtime/api/idle-collector.ts, docs/reliability.md): a full
// collection once the client budget has been idle for IDLE_MS after a burst, and a follow-up
// FOLLOW_UP_MS later for what connections still closing held; nothing while clients hold bytes
// or after small traffic; glibc's malloc_trim after each collection, once the threads' collections
// are done. A burst is also bytes read and discarded (refused bodies read by lingering
// connections, refused frames) that the budget never held: 60 bodies of 31 MiB refused from their
// headers left their socket reads uncollected (docs/reliability.md "Memory after a burst"). And
// traffic that passed BURST_BYTES through the budget without holding much at once (streams), once
// it has stopped.
// Time is a fake clock; the collections are real (collectEverywhere), and so are the sockets of
// the refused bodies.
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { test } from 'node:test';
import sharp from 'sharp';
import { ClientBudget } from '../../runtime/api/client-budget.js';
import { BURST_BYTES, FOLLOW_UP_MS, IDLE_MS, IdleCollector, QUIET_MS } from '../../runtime/api/idle-collector.js';
import { collectEverywhere } from '../../runtime/base/full-collection.js';
import { silentLogger } from '../../runtime/base/log.js';
import type { MallocTrim } from '../../runtime/base/malloc-trim.js';
import { WorkMeter } from '../../runtime/base/work-meter.js';
import { captureLogger } from '../helpers/log-capture.js';
import { FakeClock } from '../helpers/fake-clock.js';
import { MODEL_FILES, SHIPPED_MODELS } from '../helpers/paths.js';
import { TempRepository } from '../helpers/repository.js';
import { startRuntime } from '../helpers/runtime.js';
import { vadModelJson } from '../helpers/scenarios.js';
import { waitFor } from '../helpers/wait.js';

const MiB = 1024 * 1024;
const noTrim: MallocTrim = { available: false, reason: 'test', trim: () => false };

/** A collector on a fake clock that counts its collections; step(ms) advances the clock and checks once. */
function countingCollector(): { budget: ClientBudget; step: (ms: number) => void; runs: () => number } {
  let count = 0;
  const clock = new FakeClock();
  const budget = new ClientBudget(4 * BURST_BYTES);
  const collector = new IdleCollector(budget, clock, silentLogger(), () => void count++, noTrim);
  return {
    budget,
    step: (ms) => {
      clock.advance(ms);
      collector.check();
    },
    runs: () => count,
  };
}

test('after a burst: one collection once idle, one more FOLLOW_UP_MS later, none while clients hold bytes', (t) => {
  const full = collectEverywhere();
  if (full === null) return t.skip('V8 gc not exposable in this process');
  let runs = 0;
  const clock = new FakeClock();
  const budget = new ClientBudget(4 * BURST_BYTES);
  const collector = new IdleCollector(budget, clock, silentLogger(), () => {
    void full();
    runs++;
  }, { available: false, reason: 'test', trim: () => false });
  const step = (ms: number): void => {
    clock.advance(ms);
    collector.check();
  };
  const small = budget.hold();
  small.add(1000);
  step(IDLE_MS * 2);
  small.release();
  step(IDLE_MS * 2);
  assert.equal(runs, 0, 'no burst: no collection');
  const burst = budget.hold();
  burst.add(BURST_BYTES * 2);
  step(1000);
  step(IDLE_MS * 2);
  assert.equal(runs, 0, 'clients still hold bytes');
  burst.release();
  step(1000);
  step(IDLE_MS - 1000);
  assert.equal(runs, 0, 'not idle long enough yet');
  step(1000);
  assert.equal(runs, 1, 'idle for IDLE_MS after the burst');
  step(FOLLOW_UP_MS - 1000);
  assert.equal(runs, 1);
  step(1000);
  assert.equal(runs, 2, 'the follow-up');
  step(FOLLOW_UP_MS * 3);
  assert.equal(runs, 2, 'nothing more until the next burst');
  assert.equal(collector.count, 2);
});

test('after each collection, once the threads have answered, malloc_trim runs on the main thread, counted and logged', async (t) => {
  const full = collectEverywhere();
  if (full === null) return t.skip('V8 gc not exposable in this process');
  const clock = new FakeClock();
  const budget = new ClientBudget(4 * BURST_BYTES);
  const { logger, lines } = captureLogger('info');
  let runs = 0;
  let trims = 0;
  let threadsDone = (): void => {};
  const collect = (): Promise<void> => {
    void full();
    runs++;
    return new Promise<void>((resolve) => (threadsDone = resolve));
  };
  const trim: MallocTrim = { available: true, reason: null, trim: () => (trims++, true) };
  const collector = new IdleCollector(budget, clock, logger, collect, trim);
  const step = (ms: number): void => {
    clock.advance(ms);
    collector.check();
  };
  const burst = budget.hold();
  burst.add(BURST_BYTES * 2);
  step(1000);
  burst.release();
  step(1000);
  step(IDLE_MS);
  assert.equal(runs, 1);
  await Promise.resolve();
  assert.equal(trims, 0, 'not before the threads have collected');
  threadsDone();
  await collector.settled;
  assert.equal(trims, 1, 'trimmed once the threads were done');
  assert.equal(collector.trimCount, 1);
  const line = lines.find((l) => l.msg.includes('malloc_trim'));
  assert.ok(line, 'the trim is logged');
  assert.equal(line.released, true);
  assert.equal(typeof line.rssBeforeMB, 'number');
  assert.equal(typeof line.rssAfterMB, 'number');
  step(FOLLOW_UP_MS);
  assert.equal(runs, 2, 'the follow-up collection');
  threadsDone();
  await collector.settled;
  assert.equal(trims, 2, 'and its trim');
});

test('without the addon: collections as before, no trim, and the reason logged once at start', () => {
  const clock = new FakeClock();
  const { logger, lines } = captureLogger('info');
  const trim: MallocTrim = { available: false, reason: 'no addon here', trim: () => assert.fail('not available: never called') };
  const collector = new IdleCollector(new ClientBudget(BURST_BYTES), clock, logger, () => undefined, trim);
  collector.start();
  collector.stop();
  const said = lines.filter((l) => l.msg.includes('malloc_trim not available'));
  assert.equal(said.length, 1);
  assert.equal(said[0]!.reason, 'no addon here');
});

test('bytes read and discarded are a burst: one collection once the discarding has stopped for IDLE_MS; a trickle never sums to one', () => {
  const { budget, step, runs } = countingCollector();
  // Refused clients hold nothing of the budget; lingering connections close one after another.
  for (let i = 0; i < 6; i++) {
    budget.discarded(4 * MiB);
    step(1000);
  }
  assert.equal(budget.heldBytes, 0);
  step(1000);
  step(IDLE_MS - 1000);
  assert.equal(runs(), 0, 'not yet IDLE_MS since the last discard');
  step(1000);
  assert.equal(runs(), 1, 'IDLE_MS after the discarding stopped');
  step(FOLLOW_UP_MS);
  assert.equal(runs(), 2, 'and the follow-up');
  // Under steady load (streams keep the budget near zero) a refusal now and then: 512 KiB a
  // minute for an hour is 30 MiB, never a burst.
  for (let minute = 0; minute < 60; minute++) {
    budget.discarded(MiB / 2);
    for (let s = 0; s < 60; s++) step(1000);
  }
  assert.equal(runs(), 2, 'a trickle of discards is no burst');
});

test('traffic that never held much at once is a burst once BURST_BYTES passed: collected QUIET_MS after it stops, never while it goes on; small requests now and then never sum to one', () => {
  const { budget, step, runs } = countingCollector();
  // Streams: every second 64 chunks of 8 KiB each held and answered (512 KiB a second, never
  // more than 8 KiB at once), for three minutes: 90 MiB through the budget.
  const second = (): void => {
    for (let i = 0; i < 64; i++) {
      const h = budget.hold();
      h.add(8 * 1024);
      h.release();
    }
    step(1000);
  };
  for (let s = 0; s < 180; s++) second();
  assert.equal(runs(), 0, 'no collection while the traffic goes on, however much passed');
  step(1000);
  step(QUIET_MS - 1000);
  assert.equal(runs(), 0, 'not yet QUIET_MS since the traffic stopped');
  step(1000);
  assert.equal(runs(), 1, 'QUIET_MS after the traffic stopped');
  step(FOLLOW_UP_MS);
  assert.equal(runs(), 2, 'and the follow-up');
  step(FOLLOW_UP_MS * 3);
  assert.equal(runs(), 2, 'nothing more until the next burst');
  // A sensor's small request every 10 s for a day (4 KiB each: 34 MiB in all), and a short burst
  // of traffic under BURST_BYTES every hour: neither sums to a collection.
  for (let hour = 0; hour < 24; hour++) {
    for (let s = 0; s < 10; s++) second(); // 5 MiB
    for (let k = 0; k < 360; k++) {
      const h = budget.hold();
      h.add(4 * 1024);
      h.release();
      for (let s = 0; s < 10; s++) step(1000);
    }
  }
  assert.equal(runs(), 2, 'small traffic with quiet between is forgotten, not summed over hours');
});

test('work the budget never saw (batches run, pixels decoded) is traffic: collected QUIET_MS after it stops, never while it goes on', () => {
  let count = 0;
  const clock = new FakeClock();
  const budget = new ClientBudget(4 * BURST_BYTES);
  const work = new WorkMeter();
  const collector = new IdleCollector(budget, clock, silentLogger(), () => void count++, noTrim, work);
  const step = (ms: number): void => {
    clock.advance(ms);
    collector.check();
  };
  // Eight 128 KB PNGs: 1 MiB through the budget, 8 x 11 MB of detector input and 8 x 119 MB decoded.
  for (let s = 0; s < 8; s++) {
    const h = budget.hold();
    h.add(128 * 1024);
    h.release();
    work.add(11 * MiB);
    step(1000);
  }
  assert.equal(count, 0, 'not while the images are worked on');
  step(1000);
  step(QUIET_MS - 1000);
  assert.equal(count, 0, 'not yet QUIET_MS since the work stopped');
  step(1000);
  assert.equal(count, 1, 'QUIET_MS after the work stopped');
  step(FOLLOW_UP_MS);
  assert.equal(count, 2, 'and the follow-up');
  // Work under BURST_BYTES with quiet between is forgotten, as small traffic is.
  for (let k = 0; k < 100; k++) {
    work.add(BURST_BYTES / 4);
    for (let s = 0; s < 30; s++) step(1000);
  }
  assert.equal(count, 2, 'small work now and then never sums to a collection');
});

test('after big images to the ocr pipeline (128 KB of client bytes for 11 MB of detector input each): collected after, and pp-ocr-det renews its session', async () => {
  const png = await sharp({ create: { width: 1000, height: 1000, channels: 3, background: { r: 255, g: 255, b: 255 } } }).png().toBuffer();
  const rt = await startRuntime(SHIPPED_MODELS);
  try {
    // The runtime's own collector runs on the real clock: this one, on a fake clock, takes its place.
    rt.runtime.idleCollector.stop();
    const clock = new FakeClock();
    const { logger, lines } = captureLogger('info');
    const collector = new IdleCollector(rt.runtime.clientBudget, clock, logger, collectEverywhere(), noTrim, rt.runtime.work);
    const answers = await Promise.all(Array.from({ length: 4 }, () =>
      fetch(`${rt.baseUrl}/v2/models/ocr/infer`, { method: 'POST', headers: { 'content-type': 'image/png' }, body: png }).then((r) => r.status)));
    assert.deepEqual(answers, [200, 200, 200, 200]);
    assert.ok(rt.runtime.clientBudget.peakBytes < BURST_BYTES, 'the client budget never saw a burst');
    const det = rt.runtime.registry.resolve('pp-ocr-det');
    assert.equal(det.renewals, 0);
    // One check per fake second (the timer's), until the collector collects: QUIET_MS and a check.
    for (let s = 0; s <= QUIET_MS / 1000 + 1 && collector.count === 0; s++) {
      clock.advance(1000);
      collector.check();
    }
    assert.equal(collector.count, 1, 'collected QUIET_MS after the images');
    const line = lines.find((l) => l.msg.includes('clients gone after a burst'));
    assert.ok(line && (line.workBytes as number) >= 4 * 960 * 960 * 3 * 4, `work ${String(line?.workBytes)}`);
    await waitFor(() => det.renewals === 1, 60_000, 'pp-ocr-det opened its session again (its arena given back)');
  } finally {
    await rt.stop();
  }
});

test('bodies refused from their headers and read while their connections linger, over real sockets, are collected after', async (t) => {
  const repo = new TempRepository({ vad: { versions: { 1: MODEL_FILES.sileroVad16k }, config: vadModelJson(8) } });
  const rt = await startRuntime(repo.dir);
  t.after(async () => {
    await rt.stop();
    repo.remove();
  });
  // The runtime's own collector runs on the real clock: this one, on a fake clock, takes its place.
  rt.runtime.idleCollector.stop();
  const budget = rt.runtime.clientBudget;
  const clock = new FakeClock();
  const { logger, lines } = captureLogger('info');
  let runs = 0;
  const collector = new IdleCollector(budget, clock, logger, () => void runs++, noTrim);
  // Each lingering connection tells the budget what it discarded once, when it closes: the fake
  // clock only runs once all have (faster than real time, it would forget the first ones' bytes
  // as a trickle while the last were still being read).
  let lingerCloses = 0;
  const discarded = budget.discarded.bind(budget);
  budget.discarded = (n: number): void => {
    lingerCloses++;
    discarded(n);
  };
  const port = Number(new URL(rt.baseUrl).port);
  // JSON of 32 MiB could never be parsed within the budget (client-budget.ts): 413 from the
  // headers, then each connection lingers and its body is read and thrown away.
  const sent = 8 * MiB;
  const closed = Array.from({ length: 4 }, () => new Promise<string>((resolve) => {
    const s = connect(port, '127.0.0.1');
    let text = '';
    s.on('data', (d: Buffer) => (text += d.toString('latin1')));
    s.on('error', () => undefined);
    s.on('close', () => resolve(text));
    s.on('connect', () => {
      s.write(`POST /v2/models/vad/infer HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: ${32 * MiB}\r\n\r\n`);
      s.end(Buffer.alloc(sent, 0x20));
    });
  }));
  for (const text of await Promise.all(closed)) assert.match(text, /^HTTP\/1\.1 413 /, 'refused from its headers');
  assert.equal(budget.peakBytes < BURST_BYTES, true, 'the budget never saw a burst');
  await waitFor(() => lingerCloses >= 4, 20_000, 'the lingering connections closed');
  // One check per fake second (the timer's), until the collector collects.
  await waitFor(() => {
    clock.advance(1000);
    collector.check();
    return runs === 1;
  }, 20_000, 'a collection after the refused bodies');
  const line = lines.find((l) => l.msg.includes('clients gone after a burst'));
  assert.ok(line);
  assert.ok((line.discardedBytes as number) >= BURST_BYTES, `discarded ${String(line.discardedBytes)}`);
});
