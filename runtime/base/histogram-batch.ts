// A batch's queue waits into one prom-client histogram in one go (docs/benchmarks.md, issue 20:
// the main thread's cost per stream chunk). prom-client's observe() makes a closure and a label
// object, validates and hashes the labels and looks the series up again for every value: per
// request, a cost the minimal sequence server does not pay. Here the first value goes through
// observe() when the series is new (it validates the labels and makes the series), and the rest
// are added to that same series: same buckets, sum and count as one observe() each. Should
// prom-client's series no longer look as expected, every value goes through observe() as before.
import type { Histogram } from 'prom-client';

/** A series as prom-client 15 keeps it (lib/histogram.js createBaseValues). */
interface Series {
  labels: Record<string, unknown>;
  bucketValues: Record<number, number>;
  sum: number;
  count: number;
}

interface HistogramInternals {
  hashMap?: Record<string, Series>;
  upperBounds?: readonly number[];
}

/** observe(labels, v / divisor) for every v of `values` (divided, not multiplied by 1 / divisor: the same doubles as before). */
export function observeEach<T extends string>(h: Histogram<T>, labels: Record<T, string>, values: readonly number[], divisor: number): void {
  if (values.length === 0) return;
  const internals = h as unknown as HistogramInternals;
  // A series that exists already takes every value here; else the first value goes through
  // observe(), which validates the labels and makes it.
  let series = seriesOf(internals, labels);
  let from = 0;
  if (!series) {
    h.observe(labels, (values[0] as number) / divisor);
    series = seriesOf(internals, labels);
    from = 1;
  }
  const bounds = internals.upperBounds;
  if (!series || !bounds) {
    for (let i = from; i < values.length; i++) h.observe(labels, (values[i] as number) / divisor);
    return;
  }
  // Each bucket's count is added once per batch, not once per value: a bucket's property is
  // named by its bound, and reading it by the number made the name again for every value
  // (8.7 µs for a batch of 16 waits, where this takes about 1: docs/benchmarks.md, issue 20).
  const keys = bucketKeys(bounds);
  const tally = new Array<number>(bounds.length).fill(0);
  let count = 0;
  const flush = (): void => {
    (series as Series).count += count;
    count = 0;
    for (let k = 0; k < tally.length; k++) {
      if (tally[k] === 0) continue;
      const key = keys[k] as string;
      (series as Series).bucketValues[key as unknown as number] = ((series as Series).bucketValues[key as unknown as number] as number) + (tally[k] as number);
      tally[k] = 0;
    }
  };
  for (let i = from; i < values.length; i++) {
    const v = (values[i] as number) / divisor;
    if (!Number.isFinite(v)) {
      flush();
      h.observe(labels, v); // refuses a value that is not finite, as before
      continue;
    }
    series.sum += v;
    count++;
    let k = 0;
    while (k < bounds.length && v > (bounds[k] as number)) k++;
    if (k < bounds.length) tally[k] = (tally[k] as number) + 1;
  }
  flush();
}

/** The bucket properties' names, as prom-client names them (each bound as a string), per bounds array. */
const keysOf = new WeakMap<readonly number[], string[]>();

function bucketKeys(bounds: readonly number[]): string[] {
  let keys = keysOf.get(bounds);
  if (!keys) keysOf.set(bounds, (keys = bounds.map((b) => String(b))));
  return keys;
}

function seriesOf(h: HistogramInternals, labels: Record<string, string>): Series | null {
  if (!h.hashMap || !Array.isArray(h.upperBounds)) return null;
  const keys = Object.keys(labels);
  for (const s of Object.values(h.hashMap)) {
    if (typeof s !== 'object' || s === null || typeof s.sum !== 'number' || typeof s.count !== 'number' || typeof s.bucketValues !== 'object') continue;
    if (Object.keys(s.labels).length === keys.length && keys.every((k) => s.labels[k] === labels[k])) return s;
  }
  return null;
}
