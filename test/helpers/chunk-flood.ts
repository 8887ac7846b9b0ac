// A device flooding `perch fleet serve` with chunk requests (docs/fleet.md "serve", a device's
// share): a raw mqtt.js client under the device's own id asks again and again for a whole model
// version it is entitled to, `inFlight` QoS 1 requests unacknowledged at a time, and never reads
// a chunk (it does not subscribe to them). Used by test/fleet/chunk-share.test.ts and
// bench/fleet-share.ts.
import mqtt, { type MqttClient } from 'mqtt';
import { topics } from '../../cloud-sync/protocol/topics.js';

export interface ChunkFlood {
  /** Requests the broker acknowledged so far. */
  readonly sent: number;
  stop(): Promise<void>;
}

export interface ChunkFloodOptions {
  url: string;
  prefix: string;
  deviceId: string;
  name: string;
  version: number;
  /** Chunks asked for per request (from 0). */
  count: number;
  /** QoS 1 requests unacknowledged at a time (Mosquitto's default receive maximum is 20). */
  inFlight?: number;
}

export async function startChunkFlood(o: ChunkFloodOptions): Promise<ChunkFlood> {
  const client: MqttClient = await mqtt.connectAsync(o.url, { clientId: o.deviceId, protocolVersion: 5, reconnectPeriod: 0, connectTimeout: 5000 });
  client.on('error', () => undefined);
  const topic = topics(o.prefix, o.deviceId).modelsRequest;
  const body = JSON.stringify({ name: o.name, version: o.version, from: 0, count: o.count });
  let sent = 0;
  let stopped = false;
  const lane = async (): Promise<void> => {
    while (!stopped && client.connected) {
      try {
        await client.publishAsync(topic, body, { qos: 1 });
        sent++;
      } catch {
        return;
      }
    }
  };
  const lanes = Array.from({ length: o.inFlight ?? 20 }, lane);
  return {
    get sent() {
      return sent;
    },
    async stop() {
      stopped = true;
      await client.endAsync(true).catch(() => undefined);
      await Promise.allSettled(lanes);
    },
  };
}
