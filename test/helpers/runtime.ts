// Starts a real runtime (real sessions, real sockets on port 0) inside the test process.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig } from '../../runtime/config/load.js';
import type { PerchConfigInput } from '../../runtime/config/schema.js';
import type { Clock } from '../../runtime/base/clock.js';
import { silentLogger } from '../../runtime/base/log.js';
import { Runtime } from '../../runtime/runtime.js';
import { modulesFor } from '../../bin/modules.js';

export interface TestRuntime {
  runtime: Runtime;
  baseUrl: string;
  wsUrl: string;
  stop(): Promise<void>;
}

export async function startRuntime(repository: string, overrides: PerchConfigInput = {}, clock?: Clock): Promise<TestRuntime> {
  // A data dir of its own unless the test brings one (restart tests reuse it).
  const ownDataDir = overrides.dataDir === undefined ? mkdtempSync(join(tmpdir(), 'perch-data-')) : null;
  const config = parseConfig({
    ...overrides,
    dataDir: overrides.dataDir ?? ownDataDir,
    server: { host: '127.0.0.1', port: 0, ...overrides.server },
    models: { ...overrides.models, repository },
    log: { level: 'silent' },
  });
  // Wired as `perch serve` wires it: the cloud agent when cloud.mqttUrl is set.
  const runtime = new Runtime(config, { log: silentLogger(), modules: modulesFor(config), ...(clock ? { clock } : {}) });
  const addr = await runtime.start();
  return {
    runtime,
    baseUrl: `http://127.0.0.1:${addr.port}`,
    wsUrl: `ws://127.0.0.1:${addr.port}/v1/ws`,
    stop: async () => {
      await runtime.stop();
      if (ownDataDir) rmSync(ownDataDir, { recursive: true, force: true });
    },
  };
}
