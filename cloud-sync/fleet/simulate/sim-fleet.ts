// Runs `perch fleet simulate`'s devices in this process: connects them at a bounded rate (a
// broker takes a burst of thousands of CONNECTs badly, and real fleets come online spread out),
// and sums their counters. Each device is a SimDevice (sim-device.ts) on its own connection.
import type { IClientOptions } from 'mqtt';
import type { SignaturePolicy } from '../../agent/model-update/signature.js';
import { SimDevice } from './sim-device.js';
import { newSimStats, type SimStats } from './sim-stats.js';

export interface SimulationOptions {
  url: string;
  prefix: string;
  devices: number;
  /** Device ids are `${idPrefix}${index}` (index from 0, zero-padded to the width of devices - 1). */
  idPrefix: string;
  /** Labels of every device; plus `shard` = index mod shards when shards > 0. */
  labels: Record<string, string>;
  shards: number;
  failureRate: number;
  unhealthyRate: number;
  signature: SignaturePolicy;
  maxModelBytes: number;
  windowChunks: number;
  chunkTimeoutMs: number;
  eventsPerSecond: number;
  eventsPerBatch: number;
  reportMs: number;
  /** New connections per second at most. */
  connectPerSecond: number;
  connect?: Partial<IClientOptions>;
}

export interface Simulation {
  readonly devices: readonly SimDevice[];
  readonly stats: SimStats;
  /** Devices connected now. */
  online(): number;
  stop(): Promise<void>;
}

export function deviceIds(prefix: string, n: number): string[] {
  const width = String(Math.max(0, n - 1)).length;
  return Array.from({ length: n }, (_, i) => `${prefix}${String(i).padStart(width, '0')}`);
}

/** Starts every device (resolves once each has connected or given up its first try). */
export async function startSimulation(o: SimulationOptions): Promise<Simulation> {
  const stats = newSimStats();
  const devices = deviceIds(o.idPrefix, o.devices).map(
    (deviceId, i) =>
      new SimDevice({
        url: o.url, prefix: o.prefix, deviceId,
        labels: o.shards > 0 ? { ...o.labels, shard: String(i % o.shards) } : { ...o.labels },
        failureRate: o.failureRate, unhealthyRate: o.unhealthyRate, signature: o.signature, maxModelBytes: o.maxModelBytes,
        fetch: { windowChunks: o.windowChunks, chunkTimeoutMs: o.chunkTimeoutMs, maxRetries: 5 },
        eventsPerSecond: o.eventsPerSecond, eventsPerBatch: o.eventsPerBatch, maxAwaitingEvents: 10_000, ackTimeoutMs: 10_000,
        reportMs: o.reportMs, stats, ...(o.connect ? { connect: o.connect } : {}),
      }),
  );
  const started: Promise<void>[] = [];
  const perTick = Math.max(1, Math.ceil(o.connectPerSecond / 10));
  for (let i = 0; i < devices.length; i += perTick) {
    for (const d of devices.slice(i, i + perTick)) started.push(d.start());
    if (i + perTick < devices.length) await new Promise((r) => setTimeout(r, 100));
  }
  await Promise.all(started);
  let stopped = false;
  return {
    devices,
    stats,
    online: () => devices.reduce((n, d) => n + (d.online ? 1 : 0), 0),
    async stop() {
      if (stopped) return;
      stopped = true;
      // In slices: thousands of DISCONNECTs at once is another burst.
      for (let i = 0; i < devices.length; i += 500) await Promise.all(devices.slice(i, i + 500).map((d) => d.stop()));
    },
  };
}
