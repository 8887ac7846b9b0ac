// The stacked buffers' pool (runtime/tensor/buffer-pool.ts): sizes, bounds, dropped when idle;
// stacking into a used buffer and splitting a session's output in place give the same tensors
// as new buffers do; a pooled view is moved to a session thread whole, never copied.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { BufferPool, isPooled, POOL_IDLE_MS, POOL_MAX_BYTES, POOL_MAX_PER_SIZE, POOL_MIN_BYTES, pooledSize } from '../../runtime/tensor/buffer-pool.js';
import { concatAlongAxis, elementCount, splitAlongAxis, type Tensor } from '../../runtime/tensor/tensor.js';
import { feedBuffers, ownedFeeds, transferList } from '../../runtime/sessions/worker-protocol.js';
import { FakeClock } from '../helpers/fake-clock.js';
import { numberedParts } from '../helpers/stack-parts.js';

describe('buffer pool', () => {
  test('sizes: never less than asked, at most a quarter more (or a page), a few sizes for many requests', () => {
    fc.assert(fc.property(fc.integer({ min: POOL_MIN_BYTES, max: 64 * 1024 * 1024 }), (bytes) => {
      const size = pooledSize(bytes);
      assert.ok(size >= bytes);
      assert.ok(size <= Math.max(bytes * 1.25, bytes + 4096), `${bytes} -> ${size}`);
      assert.equal(pooledSize(size), size, 'a pool size is its own size');
    }));
    // A stream batch of 10 to 30 chunks (2,304 bytes each): 21 requests, few sizes.
    const sizes = new Set(Array.from({ length: 21 }, (_, i) => pooledSize((10 + i) * 2304)));
    assert.ok(sizes.size <= 8, `${sizes.size} sizes`);
  });

  test('a buffer given back is taken again; one that is not a pool size, or small, is not kept', () => {
    const pool = new BufferPool(new FakeClock());
    const a = pool.take(40_000);
    assert.equal(a.byteLength, pooledSize(40_000));
    assert.ok(isPooled(a));
    pool.give(a);
    assert.equal(pool.take(39_000), a, 'same size: the same buffer');
    pool.give(new ArrayBuffer(40_001));
    pool.give(new ArrayBuffer(POOL_MIN_BYTES / 2));
    assert.equal(pool.stats.freeBytes, 0);
    const small = pool.take(100);
    assert.equal(small.byteLength, 100);
    assert.ok(!isPooled(small), 'small buffers come from the heap as they are');
    assert.deepEqual({ reused: pool.stats.reused, made: pool.stats.made }, { reused: 1, made: 1 });
  });

  test('bounded: a few buffers a size, and POOL_MAX_BYTES in all', () => {
    const pool = new BufferPool(new FakeClock());
    const size = pooledSize(20_000);
    for (let i = 0; i < POOL_MAX_PER_SIZE + 3; i++) pool.give(new ArrayBuffer(size));
    assert.equal(pool.stats.freeBytes, POOL_MAX_PER_SIZE * size);
    const big = pooledSize(POOL_MAX_BYTES / 3);
    for (let i = 0; i < 6; i++) pool.give(new ArrayBuffer(big));
    assert.ok(pool.stats.freeBytes <= POOL_MAX_BYTES, `${pool.stats.freeBytes}`);
  });

  test('dropped POOL_IDLE_MS after the last take, kept while batches keep coming', () => {
    const clock = new FakeClock();
    const pool = new BufferPool(clock);
    pool.give(pool.take(50_000));
    clock.advance(POOL_IDLE_MS - 1000);
    pool.give(pool.take(50_000));
    clock.advance(POOL_IDLE_MS - 1000);
    assert.ok(pool.stats.freeBytes > 0, 'taken 9 s ago: kept');
    clock.advance(1000);
    assert.equal(pool.stats.freeBytes, 0, 'idle for POOL_IDLE_MS: dropped');
    assert.equal(clock.pending, 0, 'and no timer left');
  });

  test('stacking into a used buffer writes every element: the same tensor as a new buffer', () => {
    const pool = new BufferPool(new FakeClock());
    fc.assert(fc.property(
      fc.array(fc.integer({ min: 1, max: 6 }), { minLength: 1, maxLength: 3 }),
      fc.nat(),
      fc.array(fc.integer({ min: 1, max: 40 }), { minLength: 2, maxLength: 8 }),
      (shape, axisSeed, sizes) => {
        const axis = axisSeed % shape.length;
        const parts = numberedParts(shape, axis, sizes);
        const fresh = concatAlongAxis(parts, axis);
        const pooled = concatAlongAxis(parts, axis, pool);
        assert.deepEqual(pooled.shape, fresh.shape);
        assert.deepEqual(Array.from(pooled.data as Float32Array), Array.from(fresh.data as Float32Array));
        // Back dirty: the next batch must not see any of it.
        const d = pooled.data as Float32Array;
        new Float32Array(d.buffer).fill(Number.NaN);
        pool.give(d.buffer as ArrayBuffer);
      },
    ), { numRuns: 300 });
    assert.ok(pool.stats.reused > 0);
  });
});

describe('splitting in place', () => {
  test('a session output split in place gives the parts a new buffer gives, within its own buffer', () => {
    fc.assert(fc.property(
      fc.array(fc.integer({ min: 1, max: 4 }), { minLength: 1, maxLength: 4 }),
      fc.nat(),
      fc.array(fc.integer({ min: 1, max: 5 }), { minLength: 2, maxLength: 9 }),
      (shape, axisSeed, sizes) => {
        const axis = axisSeed % shape.length;
        const s = shape.slice();
        s[axis] = sizes.reduce((a, b) => a + b, 0);
        const t: Tensor = { name: 'stateN', datatype: 'FP32', shape: s, data: Float32Array.from({ length: elementCount(s) }, (_, i) => i) };
        const copied = splitAlongAxis(t, axis, sizes);
        const own: Tensor = { ...t, data: (t.data as Float32Array).slice() };
        const inPlace = splitAlongAxis(own, axis, sizes, true);
        inPlace.forEach((p, i) => {
          assert.deepEqual(p.shape, copied[i]!.shape);
          assert.deepEqual(Array.from(p.data as Float32Array), Array.from(copied[i]!.data as Float32Array));
          assert.equal((p.data as Float32Array).buffer, (own.data as Float32Array).buffer, 'a view, not a copy');
        });
      },
    ), { numRuns: 500 });
  });

  test('silero-vad state [2, 17, 128], one item a request: every request gets its own two rows', () => {
    const n = 17;
    const data = new Float32Array(2 * n * 128);
    for (let o = 0; o < 2; o++) for (let r = 0; r < n; r++) data.fill(o * 1000 + r, (o * n + r) * 128, (o * n + r + 1) * 128);
    const parts = splitAlongAxis({ name: 'stateN', datatype: 'FP32', shape: [2, n, 128], data }, 1, new Array<number>(n).fill(1), true);
    parts.forEach((p, r) => {
      const d = p.data as Float32Array;
      assert.deepEqual(p.shape, [2, 1, 128]);
      assert.ok(d.subarray(0, 128).every((x) => x === r) && d.subarray(128).every((x) => x === 1000 + r), `request ${r}`);
    });
  });
});

describe('pooled buffers and the session thread', () => {
  test('a pooled view shorter than its buffer is moved whole, not copied; the thread hands back what the pool keeps', () => {
    const pool = new BufferPool(new FakeClock());
    const parts: Tensor[] = Array.from({ length: 9 }, () => ({ name: 'input', datatype: 'FP32', shape: [1, 576], data: new Float32Array(576) }));
    const stacked = concatAlongAxis(parts, 0, pool);
    const data = stacked.data as Float32Array;
    assert.ok(data.byteLength < data.buffer.byteLength, 'the pool size is larger than the batch');
    const [feed] = ownedFeeds([stacked]);
    assert.equal(feed, stacked, 'not copied');
    assert.deepEqual(transferList([stacked]), [data.buffer]);
    const sr: Tensor = { name: 'sr', datatype: 'INT64', shape: [], data: new BigInt64Array([16000n]) };
    assert.deepEqual(feedBuffers([stacked, sr, stacked]), [data.buffer], 'once, and only what the pool keeps');
  });
});
