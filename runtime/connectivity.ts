// The cloud link's state as the bus last told it (the cloud agent emits `connectivity`):
// `disabled` without a broker configured, else `offline` until the agent is connected. And the
// desired document the agent last did not apply (`cloudIgnored`), for the status and the console.
import type { Bus, BusEvents } from './base/bus.js';

export type Connectivity = BusEvents['connectivity']['state'];

export function watchConnectivity(bus: Bus, cloudConfigured: boolean): () => Connectivity {
  let state: Connectivity = cloudConfigured ? 'offline' : 'disabled';
  bus.on('connectivity', (c) => (state = c.state));
  return () => state;
}

/** The agent's last `ignored` note as the bus last told it (`cloudIgnored`), null when none. */
export function watchIgnored(bus: Bus): () => BusEvents['cloudIgnored']['note'] {
  let note: BusEvents['cloudIgnored']['note'] = null;
  bus.on('cloudIgnored', (c) => (note = c.note));
  return () => note;
}
