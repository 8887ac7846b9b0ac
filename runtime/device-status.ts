// GET /v1/status (docs/api.md): the WebSocket `status` answer plus what an operator standing at
// the device asks next: which device and version, since when, where the cloud is, and the last
// model changes, and the desired document the cloud agent last did not apply (`cloud.ignored`).
// `perch status` and the console read it.
import type { IgnoredNote } from './base/bus.js';
import { RUNTIME_VERSION } from './base/version.js';
import type { PerchConfig } from './config/schema.js';
import type { ModelChange } from './model-history.js';

export interface DeviceStatusParts {
  status: Record<string, unknown>;
  config: Readonly<PerchConfig>;
  bootId: string;
  uptimeMs: number;
  modelChanges: ModelChange[];
  /** The last desired document the cloud agent did not apply (connectivity.ts watchIgnored). */
  cloudIgnored: IgnoredNote | null;
}

export function deviceStatus(p: DeviceStatusParts): Record<string, unknown> {
  return {
    device: { id: p.config.device.id, version: RUNTIME_VERSION, bootId: p.bootId, uptimeMs: Math.round(p.uptimeMs) },
    ...p.status,
    cloud: { broker: brokerOf(p.config.cloud.mqttUrl), connectivity: p.status.connectivity, ...(p.cloudIgnored ? { ignored: p.cloudIgnored } : {}) },
    modelChanges: p.modelChanges,
  };
}

/** The broker's scheme, host and port: never the user name or password a URL may carry. */
function brokerOf(url: string | null): string | null {
  if (url === null) return null;
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}`;
  } catch {
    return null;
  }
}
