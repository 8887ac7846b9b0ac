// `perch` as a real child process, as users run it: the environment it starts from and a
// `perch serve` that is ready once it logs 'perch is serving'.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { waitFor } from './clients.js';
import { REPO_ROOT } from './paths.js';
import { Child } from './wire.js';

export const CLI = join(REPO_ROOT, 'dist', 'bin', 'perch.js');

/** The environment without any PERCH_* the developer may have set, plus `extra`. */
export function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('PERCH_')) env[k] = v;
  return { ...env, ...extra };
}

export interface DeviceConfig {
  deviceId: string;
  dataDir: string;
  /** The model repository it serves. */
  repository: string;
  mqttUrl: string;
  /** Cloud keys beside the broker URL and the fast reconnect (or replacing them). */
  cloud?: Record<string, unknown>;
  /** Where the file goes (default `<dataDir>/perch.json`). */
  file?: string;
}

/**
 * The config of a device the end-to-end tests run as `perch serve`: a random loopback port,
 * logs at info (the tests read them), synced with the broker at `mqttUrl`, reconnecting within
 * 400 ms. Written to disk; returns the file's path.
 */
export function writeDeviceConfig(c: DeviceConfig): string {
  const file = c.file ?? join(c.dataDir, 'perch.json');
  writeFileSync(file, JSON.stringify({
    device: { id: c.deviceId },
    dataDir: c.dataDir,
    models: { repository: c.repository },
    server: { host: '127.0.0.1', port: 0 },
    log: { level: 'info' },
    cloud: { mqttUrl: c.mqttUrl, reconnect: { minMs: 50, maxMs: 400 }, ...c.cloud },
  }));
  return file;
}

/** `perch serve --config F`, resolved once it serves; `children` collects it for the after-hook. */
export async function servePerch(configFile: string, children: Child[]): Promise<{ child: Child; port: number; baseUrl: string }> {
  const child = Child.spawn(process.execPath, [CLI, 'serve', '--config', configFile], { env: cleanEnv() });
  children.push(child);
  const serving = (): Record<string, unknown> | undefined => child.logLines().find((l) => l.msg === 'perch is serving');
  await waitFor(() => !child.running || serving() !== undefined, 30_000, 'perch is serving');
  assert.ok(child.running, `serve exited early:\n${child.stderr}\n${child.stdout.slice(-2000)}`);
  const port = (serving() as { port: number }).port;
  return { child, port, baseUrl: `http://127.0.0.1:${port}` };
}
