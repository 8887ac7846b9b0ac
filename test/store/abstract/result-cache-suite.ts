// The abstract result cache suite (docs/design.md house style 5; like undici's cache-store tests): every
// ResultCache implementation runs it through its own factory.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { cacheKey } from '../../../runtime/store/result-cache-key.js';
import type { CacheLimits, ResultCache } from '../../../runtime/store/result-cache.js';
import type { Tensor } from '../../../runtime/tensor/tensor.js';
import type { FakeClock } from '../../helpers/fake-clock.js';
import { withHarness } from './with-harness.js';
import { everyDatatype, sameTensor } from '../helpers/sample-tensors.js';

export interface ResultCacheHarness {
  cache: ResultCache;
  /** Closes the cache and opens it again on the same storage (a restart). */
  reopen(): Promise<ResultCache>;
  destroy(): Promise<void>;
}

export type ResultCacheFactory = (opts: { clock: FakeClock; limits: CacheLimits }) => Promise<ResultCacheHarness>;

const LIMITS: CacheLimits = { maxBytes: 1024 * 1024, defaultTtlSeconds: 60 };

function withCache(factory: ResultCacheFactory, fn: (h: ResultCacheHarness, clock: FakeClock) => Promise<void> | void, limits: Partial<CacheLimits> = {}): Promise<void> {
  return withHarness(factory, { ...LIMITS, ...limits }, fn);
}

function input(seed: number): Tensor[] {
  return [{ name: 'x', datatype: 'FP32', shape: [1, 4], data: new Float32Array([seed, seed + 1, seed + 2, seed + 3]) }];
}

/** An output whose encoded form is a little over `bytes` (a Uint8 tensor of that many elements). */
function output(bytes: number, fill = 7): Tensor[] {
  return [{ name: 'y', datatype: 'UINT8', shape: [bytes], data: new Uint8Array(bytes).fill(fill) }];
}

function assertSameOutputs(actual: readonly Tensor[] | undefined, expected: readonly Tensor[]): void {
  assert.ok(actual, 'expected a hit');
  assert.equal(actual.length, expected.length);
  actual.forEach((t, i) => assert.ok(sameTensor(t, expected[i] as Tensor), `output ${t.name} differs`));
}

export function runResultCacheSuite(name: string, factory: ResultCacheFactory): void {
  void describe(`ResultCache: ${name}`, () => {
    void test('miss, put, hit: every datatype round-trips; hits and misses are counted per model version', () =>
      withCache(factory, ({ cache }, clock) => {
        const key = cacheKey('ocr-cls', 1, input(1));
        assert.equal(cache.get(key, 'ocr-cls', 1), undefined);
        const outputs = everyDatatype();
        assert.equal(cache.put(key, 'ocr-cls', 1, outputs), true);
        const hit = cache.get(key, 'ocr-cls', 1); // visible at once, before any flush
        assertSameOutputs(hit?.outputs, outputs);
        assert.equal(hit?.model, 'ocr-cls');
        assert.equal(hit?.version, 1);
        assert.equal(hit?.expiresAt, clock.wallNow() + 60_000);
        cache.flush();
        assertSameOutputs(cache.get(key, 'ocr-cls', 1)?.outputs, outputs);
        const s = cache.stats();
        assert.equal(s.hits, 2);
        assert.equal(s.misses, 1);
        assert.equal(s.entries, 1);
        assert.ok(s.bytes > 0);
        assert.deepEqual(s.byModel, [{ model: 'ocr-cls', version: 1, entries: 1, bytes: s.bytes, hits: 2, misses: 1, evictions: 0 }]);
      }));

    void test('a hit returns a copy: changing it does not change the cache', () =>
      withCache(factory, ({ cache }) => {
        const key = cacheKey('m', 1, input(1));
        cache.put(key, 'm', 1, output(4, 1));
        cache.flush();
        const first = cache.get(key, 'm', 1);
        (first?.outputs[0]?.data as Uint8Array).fill(9);
        assertSameOutputs(cache.get(key, 'm', 1)?.outputs, output(4, 1));
      }));

    void test('TTL: an entry answers until it expires, then misses; expire() removes it', () =>
      withCache(factory, ({ cache }, clock) => {
        const key = cacheKey('m', 1, input(2));
        cache.put(key, 'm', 1, output(8), 10);
        clock.advance(9_999);
        assert.ok(cache.get(key, 'm', 1));
        cache.flush();
        clock.advance(1);
        assert.equal(cache.get(key, 'm', 1), undefined);
        assert.equal(cache.stats().entries, 1);
        assert.equal(cache.expire(), 1);
        const s = cache.stats();
        assert.equal(s.entries, 0);
        assert.equal(s.bytes, 0);
        assert.equal(s.expired, 1);
        assert.equal(s.evictions, 0, 'expiry is not eviction');
      }));

    void test('TTL <= 0 and an entry larger than the whole budget are not stored', () =>
      withCache(factory, ({ cache }) => {
        assert.equal(cache.put(cacheKey('m', 1, input(3)), 'm', 1, output(8), 0), false);
        assert.equal(cache.put(cacheKey('m', 1, input(4)), 'm', 1, output(5000)), false);
        cache.flush();
        assert.equal(cache.stats().entries, 0);
      }, { maxBytes: 4096 }));

    void test('LRU eviction keeps the byte budget and evicts the least recently used entry', () =>
      withCache(factory, ({ cache }) => {
        const keys = [0, 1, 2, 3].map((i) => cacheKey('m', 1, input(i * 10)));
        const [a, b, c, d] = keys as [string, string, string, string];
        cache.put(a, 'm', 1, output(1000, 1));
        cache.put(b, 'm', 1, output(1000, 2));
        cache.put(c, 'm', 1, output(1000, 3));
        cache.flush();
        const full = cache.stats().bytes;
        assert.ok(full <= 3200 && cache.stats().entries === 3);
        assert.ok(cache.get(a, 'm', 1)); // a is now more recent than b
        cache.put(d, 'm', 1, output(1000, 4));
        cache.flush();
        const s = cache.stats();
        assert.equal(s.entries, 3);
        assert.ok(s.bytes <= 3200, `bytes ${s.bytes} over budget`);
        assert.equal(s.evictions, 1);
        assert.equal(s.byModel[0]?.evictions, 1);
        assert.equal(cache.get(b, 'm', 1), undefined, 'b was least recently used');
        assertSameOutputs(cache.get(a, 'm', 1)?.outputs, output(1000, 1));
        assert.ok(cache.get(c, 'm', 1));
        assert.ok(cache.get(d, 'm', 1));
      }, { maxBytes: 3200 }));

    void test('setLimits: a lowered budget evicts at the next write, a new default TTL applies to later puts', () =>
      withCache(factory, ({ cache }, clock) => {
        const keys = [0, 1, 2].map((i) => cacheKey('m', 1, input(i * 10)));
        for (const [i, k] of keys.entries()) cache.put(k, 'm', 1, output(1000, i));
        cache.flush();
        assert.equal(cache.stats().entries, 3);
        cache.setLimits({ maxBytes: 1500, defaultTtlSeconds: 5 });
        const late = cacheKey('m', 1, input(99));
        cache.put(late, 'm', 1, output(100, 9));
        cache.flush();
        const s = cache.stats();
        assert.ok(s.bytes <= 1500, `bytes ${s.bytes} over the lowered budget`);
        assert.equal(s.evictions, 2);
        assert.equal(cache.get(keys[0] as string, 'm', 1), undefined, 'the least recently used went first');
        assert.equal(cache.get(late, 'm', 1)?.expiresAt, clock.wallNow() + 5000);
        assert.ok(cache.get(keys[2] as string, 'm', 1)?.expiresAt === clock.wallNow() + 60_000, 'earlier entries keep their TTL');
      }));

    void test('putting the same key again replaces the entry without counting it twice', () =>
      withCache(factory, ({ cache }) => {
        const key = cacheKey('m', 1, input(5));
        cache.put(key, 'm', 1, output(100, 1));
        cache.flush();
        cache.put(key, 'm', 1, output(200, 2));
        cache.flush();
        assert.equal(cache.stats().entries, 1);
        assertSameOutputs(cache.get(key, 'm', 1)?.outputs, output(200, 2));
      }));

    void test('a restart keeps entries, their TTL and the totals', () =>
      withCache(factory, async (h, clock) => {
        const key = cacheKey('m', 3, input(6));
        h.cache.put(key, 'm', 3, everyDatatype(), 100);
        h.cache.put(cacheKey('m', 3, input(7)), 'm', 3, output(10), 5);
        const before = (h.cache.flush(), h.cache.stats());
        const cache = await h.reopen();
        const after = cache.stats();
        assert.equal(after.entries, before.entries);
        assert.equal(after.bytes, before.bytes);
        assertSameOutputs(cache.get(key, 'm', 3)?.outputs, everyDatatype());
        clock.advance(6_000);
        assert.equal(cache.get(cacheKey('m', 3, input(7)), 'm', 3), undefined);
      }));

    void test('LRU order survives a restart', () =>
      withCache(factory, async (h) => {
        const [a, b, c] = [0, 1, 2].map((i) => cacheKey('m', 1, input(100 + i))) as [string, string, string];
        h.cache.put(a, 'm', 1, output(1000));
        h.cache.put(b, 'm', 1, output(1000));
        h.cache.flush();
        h.cache.get(a, 'm', 1); // b is now least recent
        const cache = await h.reopen(); // close flushes the pending last-use update
        cache.put(c, 'm', 1, output(1000));
        cache.flush();
        assert.equal(cache.get(b, 'm', 1), undefined);
        assert.ok(cache.get(a, 'm', 1));
      }, { maxBytes: 2100 }));

    void test('a new model version never answers from the old version (its key differs)', () =>
      withCache(factory, ({ cache }) => {
        const inputs = input(8);
        const v1 = cacheKey('m', 1, inputs);
        const v2 = cacheKey('m', 2, inputs);
        assert.notEqual(v1, v2);
        cache.put(v1, 'm', 1, output(4));
        cache.flush();
        assert.equal(cache.get(v2, 'm', 2), undefined);
        const s = cache.stats();
        assert.deepEqual(s.byModel.map((m) => [m.version, m.hits, m.misses]).sort(), [[1, 0, 0], [2, 0, 1]]);
      }));

    void test('deleteModel removes one version or every version of a model, pending puts included', () =>
      withCache(factory, ({ cache }) => {
        const k = (m: string, v: number, s: number) => cacheKey(m, v, input(s));
        cache.put(k('a', 1, 1), 'a', 1, output(4));
        cache.put(k('a', 1, 2), 'a', 1, output(4));
        cache.put(k('a', 2, 1), 'a', 2, output(4));
        cache.put(k('b', 1, 1), 'b', 1, output(4));
        cache.flush();
        cache.put(k('a', 1, 3), 'a', 1, output(4)); // still pending
        assert.equal(cache.deleteModel('a', 1), 2);
        cache.flush();
        assert.equal(cache.get(k('a', 1, 3), 'a', 1), undefined);
        assert.equal(cache.get(k('a', 1, 1), 'a', 1), undefined);
        assert.ok(cache.get(k('a', 2, 1), 'a', 2));
        assert.equal(cache.deleteModel('a'), 1);
        assert.equal(cache.get(k('a', 2, 1), 'a', 2), undefined);
        assert.ok(cache.get(k('b', 1, 1), 'b', 1));
        assert.equal(cache.stats().entries, 1);
      }));

    void test('after close every get misses and put is refused', () =>
      withCache(factory, ({ cache }) => {
        const key = cacheKey('m', 1, input(9));
        cache.put(key, 'm', 1, output(4));
        cache.close();
        assert.equal(cache.get(key, 'm', 1), undefined);
        assert.equal(cache.put(key, 'm', 1, output(4)), false);
      }));
  });
}
