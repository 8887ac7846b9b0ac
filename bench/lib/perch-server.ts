// Perch as a real separate process for the benchmarks: a temporary model repository copied from
// the shipped one (optionally with model.json edits), `node dist/bin/perch.js serve` on port 0,
// the port read from the 'perch is serving' log line, RSS from /proc, counters from /metrics.
import { spawn, type ChildProcess } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { REPO_ROOT, SHIPPED_MODELS } from '../../test/helpers/paths.js';

export const CLI = join(REPO_ROOT, 'dist', 'bin', 'perch.js');
export const ECHO_SERVER = join(REPO_ROOT, 'dist', 'bench', 'lib', 'echo-server.js');
/** Issue 20's minimal served anchors (bench/lib/minimal-server.ts, bench/lib/minimal-streams-server.ts). */
export const MINIMAL_SERVER = join(REPO_ROOT, 'dist', 'bench', 'lib', 'minimal-server.js');
export const MINIMAL_STREAMS_SERVER = join(REPO_ROOT, 'dist', 'bench', 'lib', 'minimal-streams-server.js');

/** Edits one model's parsed model.json in place. */
export type ConfigPatch = (model: string, config: Record<string, unknown>) => void;

/** Copies the shipped models (ONNX files, model.json, licenses) into a temp repository. */
export function buildRepository(models: readonly string[], patch?: ConfigPatch): string {
  const dir = mkdtempSync(join(tmpdir(), 'perch-bench-repo-'));
  for (const m of models) {
    cpSync(join(SHIPPED_MODELS, m), join(dir, m), { recursive: true });
    if (patch) {
      const file = join(dir, m, 'model.json');
      const config = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
      patch(m, config);
      writeFileSync(file, JSON.stringify(config, null, 2));
    }
  }
  return dir;
}

/** Sets `session.executor` of a model.json ('worker' is the default, 'inline' skips the thread hop). */
export const withExecutor = (executor: 'worker' | 'inline'): ConfigPatch => (_m, c) => {
  c.session = { ...(c.session as Record<string, unknown> | undefined), executor };
};

/**
 * Removes a `sequence` section (runtime-kept state): the throughput benchmark uses silero-vad
 * without state, the client sending zeros each time, as issue 2's target is stated.
 */
export const withoutSequence: ConfigPatch = (_m, c) => {
  delete c.sequence;
};

export interface PerchServer {
  pid: number;
  port: number;
  baseUrl: string;
  wsUrl: string;
  /** The gRPC port when the config turned gRPC on (server.grpcPort), else null. */
  grpcPort: number | null;
  /** The control listener's port when the config turned it on (server.control.port), else null. */
  controlPort: number | null;
  /** Milliseconds from spawn to the 'perch is serving' line. */
  startMs: number;
  /** Resident set size now, in KiB (/proc/<pid>/status VmRSS). */
  rssKiB(): number;
  /** Peak resident set size, in KiB (VmHWM). */
  hwmKiB(): number;
  /** One counter or gauge from /metrics, summed over the label sets that match `labels`. */
  metric(name: string, labels?: Record<string, string>): Promise<number>;
  /** SIGTERM, wait for exit (SIGKILL after 10 s); removes the data dir, and the repository if owned. */
  stop(): Promise<number | null>;
}

export interface StartOptions {
  repository: string;
  /** Remove the repository folder on stop. */
  ownRepository?: boolean;
  /** Extra node flags for the server (e.g. --cpu-prof). */
  nodeArgs?: string[];
  readyTimeoutMs?: number;
  /** Script and arguments instead of `dist/bin/perch.js serve` (the echo server of the transport floor). */
  command?: string[];
  /** A config file for the server (PERCH_CONFIG); the PERCH_* variables above still win. */
  config?: Record<string, unknown>;
  /** More environment variables for the server (e.g. NPM_START_ENV). */
  env?: Record<string, string>;
}

/**
 * The environment `npm start` runs Perch with (package.json's start script: glibc malloc
 * tunables, docs/reliability.md), as the container image sets it too: what is shipped.
 */
export const NPM_START_ENV: Record<string, string> = (() => {
  const pkg = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { scripts: { start: string } };
  const m = /\benv\s+((?:\w+=\S+\s+)+)node\b/.exec(pkg.scripts.start);
  if (!m) throw new Error(`package.json start script does not set its environment as expected: ${pkg.scripts.start}`);
  return Object.fromEntries((m[1] as string).trim().split(/\s+/).map((kv) => kv.split('=') as [string, string]));
})();

/**
 * The node flags of `npm start` (package.json's start script: `--no-short-builtin-calls`, which
 * keeps V8 from mapping its builtins a second time on hosts with much memory; docs/benchmarks.md,
 * "Footprint and Perch's own time").
 */
export const NPM_START_NODE_ARGS: string[] = (() => {
  const pkg = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { scripts: { start: string } };
  const m = /\bnode\s+((?:--\S+\s+)*)dist\/bin\/perch\.js\b/.exec(pkg.scripts.start);
  if (!m) throw new Error(`package.json start script does not run dist/bin/perch.js as expected: ${pkg.scripts.start}`);
  return (m[1] as string).trim().split(/\s+/).filter(Boolean);
})();

export function procStatusKiB(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status);
  if (!m) throw new Error(`${field} not in /proc/${pid}/status`);
  return Number(m[1]);
}

// Servers still running when this process exits (a benchmark that failed halfway) are killed,
// so no orphaned Perch keeps a port and a core busy on a shared machine.
const live = new Set<ChildProcess>();
process.on('exit', () => {
  for (const c of live) c.kill('SIGKILL');
});

export async function startPerch(opts: StartOptions): Promise<PerchServer> {
  const dataDir = mkdtempSync(join(tmpdir(), 'perch-bench-data-'));
  const started = performance.now();
  const configEnv: Record<string, string> = {};
  if (opts.config) {
    configEnv.PERCH_CONFIG = join(dataDir, 'bench-config.json');
    writeFileSync(configEnv.PERCH_CONFIG, JSON.stringify(opts.config));
  }
  const child: ChildProcess = spawn(process.execPath, [...(opts.nodeArgs ?? []), ...(opts.command ?? [CLI, 'serve'])], {
    cwd: dataDir,
    env: {
      ...process.env,
      PERCH_PORT: '0',
      PERCH_HOST: '127.0.0.1',
      PERCH_LOG_LEVEL: 'info',
      PERCH_DATA_DIR: dataDir,
      PERCH_MODELS_DIR: opts.repository,
      ...configEnv,
      ...opts.env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  live.add(child);
  child.once('exit', () => live.delete(child));
  let stderr = '';
  let grpcPort: number | null = null;
  let controlPort: number | null = null;
  child.stderr?.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const cleanup = () => {
    rmSync(dataDir, { recursive: true, force: true });
    if (opts.ownRepository) rmSync(opts.repository, { recursive: true, force: true });
  };

  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`perch did not serve within ${opts.readyTimeoutMs ?? 30_000} ms\n${stderr}`)), opts.readyTimeoutMs ?? 30_000);
    const lines = createInterface({ input: child.stdout! });
    lines.on('line', (line) => {
      let rec: { msg?: string; port?: number; level?: number } = {};
      try {
        rec = JSON.parse(line) as typeof rec;
      } catch {
        return;
      }
      if (rec.msg === 'perch is serving' && typeof rec.port === 'number') {
        clearTimeout(timer);
        grpcPort = typeof (rec as { grpcPort?: unknown }).grpcPort === 'number' ? (rec as { grpcPort: number }).grpcPort : null;
        controlPort = typeof (rec as { controlPort?: unknown }).controlPort === 'number' ? (rec as { controlPort: number }).controlPort : null;
        resolve(rec.port);
      } else if ((rec.level ?? 0) >= 50) {
        console.error(`perch: ${line}`);
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`perch exited with code ${code} before serving\n${stderr}`));
    });
  }).catch(async (err: Error) => {
    child.kill('SIGKILL');
    await exited;
    cleanup();
    throw err;
  });
  const startMs = performance.now() - started;
  const pid = child.pid as number;
  const baseUrl = `http://127.0.0.1:${port}`;

  return {
    pid,
    port,
    baseUrl,
    wsUrl: `ws://127.0.0.1:${port}/v1/ws`,
    grpcPort,
    controlPort,
    startMs,
    rssKiB: () => procStatusKiB(pid, 'VmRSS'),
    hwmKiB: () => procStatusKiB(pid, 'VmHWM'),
    async metric(name, labels = {}) {
      const text = await (await fetch(`${baseUrl}/metrics`)).text();
      return sumMetric(text, name, labels);
    },
    async stop() {
      const code = await stopProcess(child, exited);
      cleanup();
      return code;
    },
  };
}

/** SIGTERM, then SIGKILL if it has not exited within 10 s; resolves to its exit code. */
export async function stopProcess(child: ChildProcess, exited: Promise<number | null>): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
  child.kill('SIGTERM');
  const t = setTimeout(() => child.kill('SIGKILL'), 10_000);
  const code = await exited;
  clearTimeout(t);
  return code;
}

/** Sums the samples of one metric whose labels include `labels` (Prometheus text format). */
export function sumMetric(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name) || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][\w:]*)(\{[^}]*\})?\s+(\S+)/.exec(line);
    if (!m || m[1] !== name) continue;
    const set = m[2] ?? '';
    if (Object.entries(labels).every(([k, v]) => set.includes(`${k}="${v}"`))) sum += Number(m[3]);
  }
  return sum;
}
