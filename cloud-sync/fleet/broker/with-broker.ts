// Runs a short command against the broker: connect (with the deadline), do the work, disconnect.
import type { MqttClient } from 'mqtt';
import { connectBroker, endBroker } from './connect.js';
import type { FleetOptions } from '../cli/options.js';

export async function withBroker<T>(opts: FleetOptions, work: (client: MqttClient) => Promise<T>): Promise<T> {
  const client = await connectBroker(opts.broker);
  try {
    return await work(client);
  } finally {
    await endBroker(client);
  }
}
