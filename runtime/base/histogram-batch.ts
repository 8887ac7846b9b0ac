// A batch's queue waits into one prom-client histogram in one go (docs/benchmarks.md, issue 20:
// the main thread's cost per stream chunk). prom-client's observe() makes a closure and a label
// object, validates and hashes the labels and looks the series up again for every value: per
// request, a cost the minimal sequence server does not pay. Here the first value goes through
// observe() (it validates the labels and makes the series), and the rest are added to that same
// series: same buckets, sum and count as one observe() each. Should prom-client's series no
// longer look as expected, every value goes through observe() as before.
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
  h.observe(labels, (values[0] as number) / divisor);
  const series = seriesOf(h as unknown as HistogramInternals, labels);
  const bounds = (h as unknown as HistogramInternals).upperBounds;
  for (let i = 1; i < values.length; i++) {
    const v = (values[i] as number) / divisor;
    if (!series || !bounds || !Number.isFinite(v)) {
      h.observe(labels, v); // refuses a value that is not finite, as before
      continue;
    }
    const b = bound(bounds, v);
    series.sum += v;
    series.count += 1;
    if (b !== -1) series.bucketValues[b] = (series.bucketValues[b] as number) + 1;
  }
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

/** The first upper bound the value is at or under, -1 over the last (prom-client's findBound). */
function bound(bounds: readonly number[], v: number): number {
  for (let i = 0; i < bounds.length; i++) if (v <= (bounds[i] as number)) return bounds[i] as number;
  return -1;
}
