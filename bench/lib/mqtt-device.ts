// Processes for the MQTT benchmarks: a real `perch serve` with cloud sync on (a device), and
// `perch fleet ...` commands, each a separate process whose pino lines are kept so a benchmark
// can wait for one ('model update step done') and read its fields. Everything started here is
// SIGKILLed if the benchmark process exits early, and its temp dirs go with stop().
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { CLI, stopProcess } from './perch-server.js';

export type LogLine = Record<string, unknown> & { msg?: string };

const live = new Set<ChildProcess>();
process.on('exit', () => {
  for (const c of live) c.kill('SIGKILL');
});

export interface LoggedProcess {
  pid: number;
  lines: LogLine[];
  /** Resolves with the first line (already seen or to come) that `match` accepts. */
  waitLine(match: (l: LogLine) => boolean, timeoutMs: number, what: string): Promise<LogLine>;
  /** SIGTERM, SIGKILL after 10 s; resolves with the exit code. */
  stop(): Promise<number | null>;
  exited: Promise<number | null>;
}

export function spawnLogged(args: string[], env: Record<string, string>, cwd: string): LoggedProcess {
  const child = spawn(process.execPath, args, { cwd, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  live.add(child);
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => {
      live.delete(child);
      resolve(code);
    }),
  );
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
  const lines: LogLine[] = [];
  const waiters = new Set<(l: LogLine) => void>();
  createInterface({ input: child.stdout! }).on('line', (text) => {
    let l: LogLine;
    try {
      l = JSON.parse(text) as LogLine;
    } catch {
      return;
    }
    lines.push(l);
    if (typeof l.level === 'number' && l.level >= 50) console.error(`  [pid ${child.pid}] ${text}`);
    for (const w of waiters) w(l);
  });
  return {
    pid: child.pid as number,
    lines,
    exited,
    waitLine(match, timeoutMs, what) {
      const seen = lines.find(match);
      if (seen) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        const done = (err: Error | null, l?: LogLine) => {
          clearTimeout(timer);
          waiters.delete(onLine);
          if (err) reject(err);
          else resolve(l as LogLine);
        };
        const onLine = (l: LogLine) => {
          if (match(l)) done(null, l);
        };
        const timer = setTimeout(() => done(new Error(`timed out after ${timeoutMs} ms waiting for ${what}\n${stderr}`)), timeoutMs);
        waiters.add(onLine);
        void exited.then((code) => done(new Error(`process exited (${code}) while waiting for ${what}\n${stderr}`)));
      });
    },
    stop: () => stopProcess(child, exited),
  };
}

export interface Device extends LoggedProcess {
  port: number;
  wsUrl: string;
  dataDir: string;
}

export interface DeviceOptions {
  brokerUrl: string;
  deviceId: string;
  /** The JSON config file (PERCH_CONFIG): `cloud` settings beyond the URL. */
  config: Record<string, unknown>;
  env?: Record<string, string>;
}

/** `perch serve` with an empty model repository and cloud sync on; resolves once it serves HTTP. */
export async function startDevice(o: DeviceOptions): Promise<Device> {
  const dir = mkdtempSync(join(tmpdir(), 'perch-bench-device-'));
  const models = join(dir, 'models');
  const dataDir = join(dir, 'data');
  writeFileSync(join(dir, 'config.json'), JSON.stringify(o.config));
  mkdirSync(models, { recursive: true });
  const p = spawnLogged(
    [CLI, 'serve'],
    {
      PERCH_PORT: '0',
      PERCH_HOST: '127.0.0.1',
      PERCH_LOG_LEVEL: 'info',
      PERCH_DATA_DIR: dataDir,
      PERCH_MODELS_DIR: models,
      PERCH_CONFIG: join(dir, 'config.json'),
      PERCH_MQTT_URL: o.brokerUrl,
      PERCH_DEVICE_ID: o.deviceId,
      ...o.env,
    },
    dir,
  );
  const stop = async () => {
    const code = await p.stop();
    rmSync(dir, { recursive: true, force: true });
    return code;
  };
  try {
    const serving = await p.waitLine((l) => l.msg === 'perch is serving' && typeof l.port === 'number', 30_000, 'perch is serving');
    const port = serving.port as number;
    return { ...p, stop, port, wsUrl: `ws://127.0.0.1:${port}/v1/ws`, dataDir };
  } catch (err) {
    await stop();
    throw err;
  }
}
