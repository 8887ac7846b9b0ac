// The extra event connections of one serve process (docs/fleet.md "Group commit"). MQTT.js hands
// a connection's next QoS 1 message over only after the previous one's handleMessage callback,
// which serve calls once the message is committed (node_modules/mqtt/build/lib/handlers/publish.js;
// mqttjs/MQTT.js issues 691, 1545: the callback is its backpressure and there is no manual
// PUBACK). One connection therefore has one message in the store at a time. Each of these
// connections is one more member of serve's share group on the events filter, so the broker
// spreads the batches over them and one commit takes a message from each (ingest-commit.ts).
// Clean sessions: a batch in flight on a connection that drops is sent again by its device when
// no ack comes (docs/cloud-sync.md "Delivery guarantee"), and a persistent member left behind
// by a serve restarted with fewer connections would keep receiving its share for nobody.
import type { MqttClient } from 'mqtt';
import type { Logger } from '../../../runtime/base/log.js';
import { connectBroker, endBroker } from '../broker/connect.js';
import type { BrokerOptions } from '../cli/options.js';

export interface IngestConnections {
  readonly clients: readonly MqttClient[];
  stop(): Promise<void>;
}

export async function startIngestConnections(o: {
  broker: BrokerOptions;
  /** How many to open (serve's --ingest-connections minus its main connection). */
  count: number;
  /** serve's --client-id: these take it plus `-ingest-N`; else random ids. */
  clientId?: string;
  /** The shared events filter of serve's group. */
  filter: string;
  handleMessage: MqttClient['handleMessage'];
  log: Logger;
}): Promise<IngestConnections> {
  const clients: MqttClient[] = [];
  const stop = async (): Promise<void> => {
    await Promise.all(clients.map((c) => endBroker(c)));
  };
  try {
    for (let i = 1; i <= o.count; i++) {
      const client = await connectBroker(o.broker, {
        ...(o.clientId ? { clientId: `${o.clientId}-ingest-${i}` } : {}), reconnectPeriodMs: 1000, handleMessage: o.handleMessage,
      });
      clients.push(client);
      const subscribe = async (): Promise<void> => {
        const granted = await client.subscribeAsync({ [o.filter]: { qos: 1 }, resubscribe: true } as unknown as Record<string, { qos: 1 }>);
        if (granted.some((g) => g.qos >= 0x80)) o.log.error({ refused: o.filter }, 'subscription refused by the broker (ACL?)');
      };
      await subscribe();
      // Subscribe again on every reconnect: Mosquitto 2.0.11 forgets $share subscriptions (docs/fleet.md).
      client.on('connect', () => {
        subscribe().catch((err: unknown) => o.log.error({ err }, `ingest connection ${i}: resubscribe failed`));
      });
      client.on('error', (err) => o.log.warn({ err: err.message }, `mqtt error (ingest connection ${i})`));
    }
  } catch (err) {
    await stop();
    throw err;
  }
  return { clients, stop };
}
