// Small helpers for the store benchmarks (bench/outbox.ts, bench/cache.ts): percentiles over
// samples, throughput over a timed loop, and finding the repository root.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The p-th percentile (0..100) of the samples, nearest-rank. */
export function percentile(samples: readonly number[], p: number): number {
  if (samples.length === 0) return Number.NaN;
  const sorted = [...samples].sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank] as number;
}

export interface Summary {
  p50: number;
  p99: number;
  mean: number;
  n: number;
}

export function summarize(samples: readonly number[]): Summary {
  let sum = 0;
  for (const s of samples) sum += s;
  return { p50: percentile(samples, 50), p99: percentile(samples, 99), mean: sum / samples.length, n: samples.length };
}

/** Formats microseconds from milliseconds. */
export function us(ms: number): string {
  return `${(ms * 1000).toFixed(1)} µs`;
}

/** Walks up from the calling module to the folder holding package.json. */
export function repoRoot(fromUrl: string): string {
  let dir = dirname(fileURLToPath(fromUrl));
  for (;;) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    const up = dirname(dir);
    if (up === dir) throw new Error('package.json not found above the benchmark');
    dir = up;
  }
}

/** Prints rows as an aligned text table. */
export function printTable(header: readonly string[], rows: ReadonlyArray<readonly string[]>): void {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]) => cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  ');
  console.log(line(header));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const r of rows) console.log(line(r));
}
