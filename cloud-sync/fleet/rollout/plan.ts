// The flags of `perch fleet rollout start` as numbers (docs/fleet.md "Rollouts"): waves
// `1,10%,50%,100%` (a device count or a percentage of the targeted devices, cumulative, ending
// at 100%), a bake duration (`0`, `500ms`, `30s`, `5m`, `1h`) and a failure percentage.
import { UsageError } from '../cli/options.js';

export type WaveSpec = { count: number } | { percent: number };

export const MAX_WAVES = 100;

export function parseWaves(text: string): WaveSpec[] {
  const parts = text.split(',').map((p) => p.trim());
  if (parts.length === 0 || parts.some((p) => p === '')) throw new UsageError(`--waves '${text}': a comma-separated list like 1,10%,50%,100%`);
  if (parts.length > MAX_WAVES) throw new UsageError(`--waves: at most ${MAX_WAVES} waves`);
  const waves = parts.map((p): WaveSpec => {
    const pct = /^(\d{1,3}(?:\.\d+)?)%$/.exec(p);
    if (pct) {
      const percent = Number(pct[1]);
      if (!(percent > 0 && percent <= 100)) throw new UsageError(`--waves: '${p}' must be above 0% and at most 100%`);
      return { percent };
    }
    if (!/^\d{1,9}$/.test(p) || Number(p) < 1) throw new UsageError(`--waves: '${p}' is neither a device count (>= 1) nor a percentage (like 10%)`);
    return { count: Number(p) };
  });
  const last = waves[waves.length - 1] as WaveSpec;
  if (!('percent' in last) || last.percent !== 100) throw new UsageError('--waves must end with 100% (every targeted device is in some wave)');
  return waves;
}

/**
 * Wave sizes for `total` devices: each wave's cumulative target (a count, or ceil(percent x
 * total)), capped at total and never below the previous one, minus the devices before it.
 * Waves that would add no device are left out.
 */
export function waveSizes(waves: readonly WaveSpec[], total: number): number[] {
  const sizes: number[] = [];
  let reached = 0;
  for (const w of waves) {
    const target = Math.min(total, 'count' in w ? w.count : Math.ceil((w.percent * total) / 100 - 1e-9));
    if (target > reached) {
      sizes.push(target - reached);
      reached = target;
    }
  }
  return sizes;
}

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

export function parseDuration(text: string, flag: string): number {
  const m = /^(\d{1,9})(ms|s|m|h)?$/.exec(text.trim());
  if (!m) throw new UsageError(`--${flag} '${text}': a duration like 0, 500ms, 30s, 5m or 1h`);
  const n = Number(m[1]);
  if (n !== 0 && m[2] === undefined) throw new UsageError(`--${flag} '${text}': give a unit (ms, s, m or h)`);
  return n * (UNITS[m[2] ?? 'ms'] as number);
}

export function parsePercent(text: string, flag: string): number {
  const m = /^(\d{1,3}(?:\.\d+)?)%?$/.exec(text.trim());
  const n = m ? Number(m[1]) : NaN;
  if (!(n >= 0 && n <= 100)) throw new UsageError(`--${flag} '${text}': a percentage from 0 to 100`);
  return n;
}

export function parseRate(text: string, flag: string): number {
  const n = Number(text);
  if (text.trim() === '' || !(n >= 0 && n <= 1)) throw new UsageError(`--${flag} '${text}': an error rate from 0 to 1 (0.01 = 1 %)`);
  return n;
}

export function parsePositiveMs(text: string, flag: string): number {
  const n = Number(text);
  if (text.trim() === '' || !(n > 0) || !Number.isFinite(n)) throw new UsageError(`--${flag} '${text}': milliseconds above 0`);
  return n;
}
