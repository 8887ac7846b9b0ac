// Decoded pixels in flight are bounded process-wide (docs/models.md, "Pipelines"; issue 12):
// many large images posted at once to the shipped `ocr` pipeline never hold more pixels together
// than models.maxPixelsInFlight, every request is answered (those that wait, those whose decoding
// fails after taking pixels, the one larger than the whole budget), and the budget is back to 0
// after, errors included. The bound is read from the budget's observer, not from RSS.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { constants, PerformanceObserver } from 'node:perf_hooks';
import { connect, type Socket } from 'node:net';
import { after, before, test } from 'node:test';
import { PixelBudget } from '../../runtime/pipelines/pixel-budget.js';
import { OCR_IMAGES, SHIPPED_MODELS } from '../helpers/paths.js';
import { hugePngHeader, whitePng } from '../helpers/media.js';
import { startRuntime, type TestRuntime } from '../helpers/runtime.js';
import { waitFor } from '../helpers/wait.js';

const LIMIT = 20_000_000;
let rt: TestRuntime;
before(async () => {
  rt = await startRuntime(SHIPPED_MODELS, { models: { maxPixelsInFlight: LIMIT } });
});
after(async () => {
  await rt.stop();
});

async function post(body: Buffer): Promise<{ status: number; code?: string; text?: string }> {
  const res = await fetch(`${rt.baseUrl}/v2/models/ocr/infer`, { method: 'POST', headers: { 'content-type': 'image/png' }, body });
  const json = (await res.json()) as { code?: string; outputs?: Array<{ name: string; data: string[] }> };
  const text = json.outputs?.find((o) => o.name === 'text')?.data.join('\n');
  return { status: res.status, ...(json.code ? { code: json.code } : {}), ...(text !== undefined ? { text } : {}) };
}

async function gauge(name: string): Promise<number> {
  const text = await (await fetch(`${rt.baseUrl}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  assert.ok(line, `${name} in /metrics`);
  return Number(line.split(' ')[1]);
}

test('large images at once to ocr: the pixels held never pass the budget, every request is answered, the budget is 0 after', async () => {
  const budget = rt.runtime.pixels;
  let most = 0;
  budget.observer = (held) => { most = Math.max(most, held); };
  const big = whitePng(3000, 3000); // 9 M pixels: two fit in 20 M at once
  const truncated = hugePngHeader(3000, 3000); // takes its 9 M, then fails to decode
  const overBudget = hugePngHeader(5000, 5000); // 25 M: under maxPixels (40 M), over the whole budget
  const ordinary = readFileSync(OCR_IMAGES.uprightPng);
  const bodies = [big, truncated, big, overBudget, big, ordinary, big, truncated, big, big, ordinary];
  const answers = await Promise.all(bodies.map(post));
  budget.observer = null;
  answers.forEach((a, i) => {
    const body = bodies[i];
    if (body === big) assert.equal(a.status, 200, `request ${i}: ${JSON.stringify(a)}`);
    else if (body === truncated) assert.deepEqual([a.status, a.code], [400, 'PERCH_ERR_IMAGE_INVALID'], `request ${i}`);
    else if (body === overBudget) assert.deepEqual([a.status, a.code], [413, 'PERCH_ERR_IMAGE_TOO_LARGE'], `request ${i}`);
    else assert.deepEqual([a.status, a.text], [200, 'Edge OCR 2026'], `request ${i}`);
  });
  assert.ok(most > 0 && most <= LIMIT, `at most ${most} pixels held at once (limit ${LIMIT})`);
  // Given back before each answer was sent, on the error paths too.
  assert.equal(budget.heldPixels, 0);
  assert.equal(budget.waitingCount, 0);
  assert.equal(await gauge('perch_pipeline_pixels'), 0);
  assert.equal(await gauge('perch_pipeline_pixels_waiting'), 0);
  assert.equal(await gauge('perch_pipeline_pixels_limit'), LIMIT);
  // And the next image runs at once.
  assert.deepEqual(await post(ordinary), { status: 200, text: 'Edge OCR 2026' });
  assert.equal(budget.heldPixels, 0);
});

test('the budget: waiters are granted in order, a full line is refused, an image over the budget never waits', async () => {
  const b = new PixelBudget(10, 2);
  const first = await b.take(6, 'a');
  const order: string[] = [];
  const big = b.take(8, 'b').then((give) => { order.push('b'); return give; });
  const small = b.take(1, 'c').then((give) => { order.push('c'); return give; }); // fits, but waits its turn behind b
  await assert.rejects(b.take(1, 'd'), { code: 'PERCH_ERR_QUEUE_FULL' });
  await assert.rejects(b.take(11, 'e'), { code: 'PERCH_ERR_IMAGE_TOO_LARGE' });
  assert.deepEqual([b.heldPixels, b.waitingCount, b.waitingPixels, b.refusedCount], [6, 2, 9, 1]);
  first();
  first(); // a second call gives nothing back twice
  const giveB = await big;
  const giveC = await small;
  assert.deepEqual(order, ['b', 'c']);
  assert.equal(b.heldPixels, 9);
  giveB();
  giveC();
  assert.deepEqual([b.heldPixels, b.waitingCount], [0, 0]);
});

test('after a big picture the main thread collects before the answer goes: its view of the shared pixels is let go at once', async () => {
  // The main thread holds a view of each decoded picture (a SharedArrayBuffer, runtime/processing/
  // image.ts) while the steps run; the memory is freed once every thread's view is collected, and
  // this thread's small heap was not collected between pictures: eight 39.7 Mpx images one at a
  // time peaked at 1.3-1.5 GB (docs/models.md "Decoded pixels in flight"). Node reports each
  // garbage collection of this thread; a forced full one is the pipeline's.
  const big = whitePng(3000, 3000); // 9 Mpx: over the 4 Mpx after which threads collect
  assert.equal((await post(big)).status, 200); // the models load
  let forced = 0;
  const observer = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      const d = (e as unknown as { detail?: { kind: number; flags: number } }).detail;
      if (d && d.kind === constants.NODE_PERFORMANCE_GC_MAJOR && (d.flags & constants.NODE_PERFORMANCE_GC_FLAGS_FORCED) !== 0) forced++;
    }
  });
  observer.observe({ entryTypes: ['gc'] });
  try {
    assert.equal((await post(big)).status, 200);
    await waitFor(() => forced > 0, 10_000, 'a forced full collection on the main thread after the big picture');
  } finally {
    observer.disconnect();
  }
});

test('clients that go away while their images wait for pixels leave the line, and nothing of theirs is decoded', async () => {
  // Red-team pass: 16 clients that posted 39.7 Mpx PNGs to ocr and closed their connections
  // were still decoded and run one after the other (the runs had left the batcher's queue), and
  // the next client's small image waited 19 s behind them.
  const budget = rt.runtime.pixels;
  const port = Number(new URL(rt.baseUrl).port);
  // The test holds the whole budget, so nothing posted can be granted while it does.
  const giveAll = await budget.take(LIMIT, 'the test');
  const big = whitePng(3000, 3000);
  const sockets: Socket[] = [];
  let grantedAfter = 0;
  try {
    for (let i = 0; i < 4; i++) {
      const s = connect(port, '127.0.0.1');
      s.on('error', () => undefined);
      s.write(`POST /v2/models/ocr/infer HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/png\r\nContent-Length: ${big.length}\r\n\r\n`);
      s.write(big);
      sockets.push(s);
    }
    await waitFor(() => budget.waitingCount === 4, 30_000, () => `${budget.waitingCount} images wait`);
    for (const s of sockets) s.destroy();
    await waitFor(() => budget.waitingCount === 0, 10_000, () => `${budget.waitingCount} images of gone clients still wait`);
  } finally {
    for (const s of sockets) s.destroy();
    budget.observer = (held) => {
      if (held > 0) grantedAfter++;
    };
    giveAll();
  }
  // The next client is served, and is the only one that took pixels after the test gave them back.
  assert.deepEqual(await post(readFileSync(OCR_IMAGES.uprightPng)), { status: 200, text: 'Edge OCR 2026' });
  budget.observer = null;
  assert.equal(grantedAfter, 1, 'only the next client took pixels');
  assert.deepEqual([budget.heldPixels, budget.waitingCount], [0, 0]);
});
