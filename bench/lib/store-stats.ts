// Small helpers for the store benchmarks (bench/outbox.ts, bench/cache.ts): summaries of samples
// in microseconds and finding the repository root. Percentiles and tables: lib/stats.ts.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { percentile } from './stats.js';

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
