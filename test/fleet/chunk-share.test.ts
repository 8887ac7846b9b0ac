// Each device's share of serve's chunk answers (cloud-sync/fleet/serve/chunk-share.ts,
// request-credit.ts; docs/fleet.md "A device's share"): devices take turns one chunk each, a
// device's queue and its requests ahead of what it was sent are bounded, a chunk waiting or just
// sent is not queued twice, and the bytes in flight stay under their bound. The sending is a
// function the test completes by hand; test/cloud-sync/e2e-chunk-flood.test.ts runs it all for real.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ChunkShare, type ChunkToSend } from '../../cloud-sync/fleet/serve/chunk-share.js';
import { RequestCredit } from '../../cloud-sync/fleet/serve/request-credit.js';

const SPEC = { name: 'm', version: 1, size: 100 * 64, chunkSize: 100 };

function harness(o: { maxQueuedPerDevice?: number; maxInFlightBytes?: number } = {}) {
  let now = 0;
  const inFlight: Array<{ chunk: ChunkToSend; done: () => void }> = [];
  const sent: string[] = [];
  const share = new ChunkShare({
    maxQueuedPerDevice: o.maxQueuedPerDevice ?? 256,
    maxInFlightBytes: o.maxInFlightBytes ?? 1, // one chunk at a time
    now: () => now,
    send: (chunk) =>
      new Promise<void>((resolve) => {
        sent.push(`${chunk.deviceId}${chunk.index}`);
        inFlight.push({ chunk, done: resolve });
      }),
  });
  /** Completes the oldest send and lets the share go on. */
  const ack = async (): Promise<void> => {
    inFlight.shift()?.done();
    await new Promise((r) => setImmediate(r));
  };
  return { share, sent, inFlight, ack, advance: (ms: number) => (now += ms) };
}

void test('devices take turns one chunk each, whatever each asked for', async () => {
  const h = harness();
  h.share.add('a', SPEC, 0, 10);
  h.share.add('b', SPEC, 0, 2);
  h.share.add('c', SPEC, 5, 1);
  while (h.inFlight.length) await h.ack();
  assert.deepEqual(h.sent, ['a0', 'a1', 'b0', 'c5', 'a2', 'b1', 'a3', 'a4', 'a5', 'a6', 'a7', 'a8', 'a9']);
  assert.deepEqual(h.share.state, { waiting: 0, devices: 0, inFlight: 0, inFlightBytes: 0 });
});

void test("a device's queue is bounded; a chunk waiting or just sent is queued once", async () => {
  const h = harness({ maxQueuedPerDevice: 4 });
  assert.deepEqual(h.share.add('a', SPEC, 0, 10), { queued: 4, duplicates: 0, refused: 6 }); // a0 went out at once
  assert.equal(h.share.room('a'), 1);
  assert.deepEqual(h.share.add('a', SPEC, 0, 3), { queued: 0, duplicates: 3, refused: 0 }); // a0 sent, a1 a2 waiting
  assert.deepEqual(h.share.add('a', SPEC, 4, 3), { queued: 1, duplicates: 0, refused: 2 });
  while (h.inFlight.length) await h.ack();
  assert.deepEqual(h.sent, ['a0', 'a1', 'a2', 'a3', 'a4']);
  // Just sent: not again until the agent could have timed out waiting for it.
  assert.deepEqual(h.share.add('a', SPEC, 0, 2), { queued: 0, duplicates: 2, refused: 0 });
  h.advance(5000);
  assert.deepEqual(h.share.add('a', SPEC, 0, 2), { queued: 2, duplicates: 0, refused: 0 });
  while (h.inFlight.length) await h.ack();
  assert.deepEqual(h.sent.slice(5), ['a0', 'a1']);
});

void test('bytes in flight stay under their bound (one chunk always may go)', async () => {
  const h = harness({ maxInFlightBytes: 250 });
  h.share.add('a', SPEC, 0, 20);
  assert.equal(h.inFlight.length, 3); // 0, 100, 200 bytes before each: under 250
  await h.ack();
  assert.equal(h.inFlight.length, 3);
  const big = harness({ maxInFlightBytes: 50 });
  big.share.add('a', SPEC, 0, 3);
  assert.equal(big.inFlight.length, 1);
  // Closing drops what waits and resolves once the chunks in flight are done.
  let closed = false;
  const closing = h.share.close().then(() => (closed = true));
  while (h.inFlight.length) await h.ack();
  await closing;
  assert.ok(closed);
  assert.equal(h.sent.length, 4);
});

void test('a device is looked at only as far ahead of the chunks sent to it as its credit', () => {
  let now = 0;
  const credit = new RequestCredit(3, 10, () => now);
  assert.deepEqual([credit.take('a'), credit.take('a'), credit.take('a'), credit.take('a')], [true, true, true, false]);
  assert.equal(credit.take('b'), true); // each device its own
  credit.refund('a'); // a chunk went out to it
  assert.deepEqual([credit.take('a'), credit.take('a')], [true, false]);
  now += 100; // 10 a second
  assert.deepEqual([credit.take('a'), credit.take('a')], [true, false]);
  now += 10_000;
  assert.deepEqual([credit.take('a'), credit.take('a'), credit.take('a'), credit.take('a')], [true, true, true, false]);
});
