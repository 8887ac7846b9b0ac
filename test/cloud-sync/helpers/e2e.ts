// What the end-to-end device tests share: a real Mosquitto and a temporary model repository for
// the file, devices run as real `perch serve` processes on their own data dirs, and the after-hook
// that kills what is left running and deletes what was made. Call e2eSetup() at the top level of
// a test file: it registers the before/after hooks.
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before } from 'node:test';
import { startMosquitto, type Mosquitto } from '../../helpers/mosquitto.js';
import { servePerch, writeDeviceConfig, type DeviceConfig } from '../../helpers/perch-process.js';
import { TempRepository, type ModelSpecForTest } from '../../helpers/repository.js';
import type { Child } from '../../helpers/wire.js';

export interface E2eDevice {
  deviceId: string;
  dataDir: string;
  /** Its perch.json (writeDeviceConfig). */
  configFile: string;
}

export interface E2e {
  /** The broker (set once the before-hook ran). */
  readonly broker: Mosquitto;
  /** The model repository the devices serve (set once the before-hook ran). */
  readonly repo: TempRepository;
  /** Every child process started; the after-hook kills those still running. */
  readonly children: Child[];
  /** A fresh temporary folder, deleted by the after-hook. */
  tempDir(prefix?: string): string;
  /** A device id (`<idPrefix>-xxxxxxxx`), a fresh data dir unless given, and its config file. */
  device(idPrefix: string, config?: Partial<Omit<DeviceConfig, 'deviceId' | 'repository' | 'mqttUrl'>>): E2eDevice;
  /** `perch serve` on that config, resolved once it serves. */
  serve(configFile: string): ReturnType<typeof servePerch>;
}

export function e2eSetup(models: Record<string, ModelSpecForTest>): E2e {
  let broker: Mosquitto | undefined;
  let repo: TempRepository | undefined;
  const children: Child[] = [];
  const temp: string[] = [];
  before(async () => {
    broker = await startMosquitto();
    repo = new TempRepository(models);
  });
  after(async () => {
    for (const c of children) await c.kill();
    await broker?.close();
    repo?.remove();
    for (const d of temp) rmSync(d, { recursive: true, force: true });
  });
  const e2e: E2e = {
    get broker() {
      if (!broker) throw new Error('e2e broker read before the before-hook ran');
      return broker;
    },
    get repo() {
      if (!repo) throw new Error('e2e repository read before the before-hook ran');
      return repo;
    },
    children,
    tempDir(prefix = 'perch-e2e-') {
      const d = mkdtempSync(join(tmpdir(), prefix));
      temp.push(d);
      return d;
    },
    device(idPrefix, config = {}) {
      const deviceId = `${idPrefix}-${randomUUID().slice(0, 8)}`;
      const dataDir = config.dataDir ?? e2e.tempDir();
      const configFile = writeDeviceConfig({ ...config, deviceId, dataDir, repository: e2e.repo.dir, mqttUrl: e2e.broker.url });
      return { deviceId, dataDir, configFile };
    },
    serve: (configFile) => servePerch(configFile, children),
  };
  return e2e;
}
