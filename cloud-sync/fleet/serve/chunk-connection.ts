// Chunk requests on an MQTT connection of their own (docs/fleet.md "serve"). Answering one needs
// no store write, only a read of the device's desired state; on the main connection, whose
// messages serve handles one at a time with a store commit each (the PUBACK of an event batch
// waits for its commit), a request would wait behind every status, reported state and event
// batch that arrived before it. At 10,000 devices a rollout's chunk requests timed out there
// (bench/fleet-scale.ts). The chunks go out on this connection too, so model bytes never hold up
// event acks. A request lost with this connection is asked again by the device after its chunk
// timeout, so the session is clean.
import type { MqttClient } from 'mqtt';
import type { Logger } from '../../../runtime/base/log.js';
import { parseTopic } from '../../protocol/topics.js';
import { connectBroker } from '../broker/connect.js';
import type { BrokerOptions } from '../cli/options.js';
import { answerChunkRequest, type ChunkServerContext } from './chunk-server.js';
import { countIgnored } from './stats.js';

export interface ChunkConnection {
  readonly client: MqttClient;
  stop(): Promise<void>;
}

export async function startChunkConnection(o: {
  broker: BrokerOptions;
  /** serve's --client-id plus `-chunks`, else a random id. */
  clientId?: string;
  /** The shared `models/request` filter of serve's group. */
  filter: string;
  prefix: string;
  log: Logger;
  /** Filled in with this connection's client. */
  context: (client: MqttClient) => ChunkServerContext;
}): Promise<ChunkConnection> {
  const client = await connectBroker(o.broker, { ...(o.clientId ? { clientId: o.clientId } : {}), reconnectPeriodMs: 1000 });
  const ctx = o.context(client);
  const pending = new Set<Promise<void>>();
  client.on('message', (topic, payload) => {
    const parsed = parseTopic(o.prefix, topic);
    if (parsed?.kind !== 'modelsRequest') return countIgnored(ctx.stats, 'topic');
    const p = answerChunkRequest(ctx, parsed.deviceId, topic, payload).catch((err: unknown) => {
      countIgnored(ctx.stats, 'error');
      o.log.error({ err, topic }, 'chunk request failed');
    });
    pending.add(p);
    void p.finally(() => pending.delete(p));
  });
  const subscribe = async (): Promise<void> => {
    const granted = await client.subscribeAsync({ [o.filter]: { qos: 1 }, resubscribe: true } as unknown as Record<string, { qos: 1 }>);
    if (granted.some((g) => g.qos >= 0x80)) o.log.error({ refused: o.filter }, 'subscription refused by the broker (ACL?)');
  };
  await subscribe();
  client.on('connect', () => {
    subscribe().catch((err: unknown) => o.log.error({ err }, 'chunk requests: resubscribe failed'));
  });
  client.on('error', (err) => o.log.warn({ err: err.message }, 'mqtt error (chunk connection)'));
  return {
    client,
    async stop() {
      await Promise.allSettled([...pending]);
      await client.endAsync().catch(() => undefined);
    },
  };
}
