// The cloud link's state as the bus last told it (the cloud agent emits `connectivity`):
// `disabled` without a broker configured, else `offline` until the agent is connected.
import type { Bus, BusEvents } from './base/bus.js';

export type Connectivity = BusEvents['connectivity']['state'];

export function watchConnectivity(bus: Bus, cloudConfigured: boolean): () => Connectivity {
  let state: Connectivity = cloudConfigured ? 'offline' : 'disabled';
  bus.on('connectivity', (c) => (state = c.state));
  return () => state;
}
