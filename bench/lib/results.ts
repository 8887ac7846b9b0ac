// Benchmark results as JSON in build/bench/results.json (docs/benchmarks.md is updated from it).
// Each benchmark merges its own section, so one can be re-run alone without losing the others.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { REPO_ROOT } from '../../test/helpers/paths.js';
import { ortVersion } from './raw-ort.js';

export const RESULTS_DIR = join(REPO_ROOT, 'build', 'bench');
export const RESULTS_FILE = join(RESULTS_DIR, 'results.json');

export interface Machine {
  nproc: number;
  cpuModel: string;
  node: string;
  onnxruntimeNode: string;
  platform: string;
  loadavg1mAtStart: number;
}

export function machine(): Machine {
  let cpuModel = cpus()[0]?.model ?? 'unknown';
  try {
    const m = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'));
    if (m?.[1]) cpuModel = m[1].trim();
  } catch {
    // not Linux: os.cpus() is the best there is
  }
  return {
    nproc: cpus().length,
    cpuModel,
    node: process.version,
    onnxruntimeNode: ortVersion(),
    platform: `${process.platform}-${process.arch}`,
    loadavg1mAtStart: Number((loadavg()[0] ?? 0).toFixed(2)),
  };
}

export function readResults(): Record<string, unknown> {
  try {
    return JSON.parse(readFileSync(RESULTS_FILE, 'utf8')) as Record<string, unknown>;
  } catch {
    return {};
  }
}

/** Merges one benchmark's section (with the machine and the time it ran) into results.json. */
export function saveSection(name: string, section: Record<string, unknown>, command: string): void {
  mkdirSync(RESULTS_DIR, { recursive: true });
  const all = readResults();
  all[name] = { date: new Date().toISOString(), command, machine: machine(), ...section };
  writeFileSync(RESULTS_FILE, `${JSON.stringify(all, null, 2)}\n`);
}

/**
 * Writes one campaign run's figures (with the time and the machine) to build/bench/<name>.json,
 * says where, and returns the path.
 */
export function writeRunFile(name: string, figures: Record<string, unknown>): string {
  mkdirSync(RESULTS_DIR, { recursive: true });
  const file = join(RESULTS_DIR, `${name}.json`);
  writeFileSync(file, `${JSON.stringify({ date: new Date().toISOString(), machine: machine(), ...figures }, null, 2)}\n`);
  console.log(`wrote ${file}`);
  return file;
}
