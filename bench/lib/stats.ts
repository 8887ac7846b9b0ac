// Statistics and printing shared by the runtime benchmarks (overhead, throughput, memory).
// Percentiles are nearest-rank; ratios across interleaved rounds are reported as medians, so a
// disturbed round (this machine is shared) moves the figure less than a mean would.

/** The p-th percentile (0..100) of the samples, nearest-rank. */
export function percentile(samples: readonly number[], p: number): number {
  if (samples.length === 0) return Number.NaN;
  const sorted = Float64Array.from(samples).sort();
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank] as number;
}

export function median(values: readonly number[]): number {
  return percentile(values, 50);
}

export function minMax(values: readonly number[]): [number, number] {
  return [Math.min(...values), Math.max(...values)];
}

export interface LatencySummary {
  p50: number;
  p99: number;
  n: number;
}

export function latencySummary(samplesMs: readonly number[]): LatencySummary {
  return { p50: percentile(samplesMs, 50), p99: percentile(samplesMs, 99), n: samplesMs.length };
}

/** Milliseconds with 3 decimals (µs resolution). */
export function ms(x: number): string {
  return Number.isFinite(x) ? x.toFixed(3) : '-';
}

export function ratio(x: number): string {
  return Number.isFinite(x) ? x.toFixed(2) : '-';
}

export function perSecond(x: number): string {
  return Number.isFinite(x) ? Math.round(x).toLocaleString('en-US') : '-';
}

/** Spread of per-round values, e.g. "1.08-1.21". */
export function spread(values: readonly number[], digits = 2): string {
  if (values.length === 0) return '-';
  const [lo, hi] = minMax(values);
  return `${lo.toFixed(digits)}-${hi.toFixed(digits)}`;
}

/** Prints rows as an aligned text table; numeric-looking cells are right-aligned. */
export function printTable(title: string, header: readonly string[], rows: ReadonlyArray<readonly string[]>): void {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const numeric = /^[-+]?[\d.,]+( ?[a-zµ%/]+)?$|^-$/i;
  const line = (cells: readonly string[]) =>
    cells.map((c, i) => (i > 0 && numeric.test(c) ? c.padStart(widths[i] ?? 0) : c.padEnd(widths[i] ?? 0))).join('  ').trimEnd();
  console.log(`\n${title}`);
  console.log(line(header));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const r of rows) console.log(line(r));
}

export const sleep = (msDelay: number): Promise<void> => new Promise((r) => setTimeout(r, msDelay));
