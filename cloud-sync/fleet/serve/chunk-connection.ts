// Chunk requests on an MQTT connection of their own (docs/fleet.md "serve"). Answering one needs
// no store write, only a read of the device's desired state; on the main connection, whose
// messages serve handles one at a time with a store commit each (the PUBACK of an event batch
// waits for its commit), a request would wait behind every status, reported state and event
// batch that arrived before it. At 10,000 devices a rollout's chunk requests timed out there
// (bench/fleet-scale.ts). The chunks go out on this connection too, so model bytes never hold up
// event acks. A request lost with this connection is asked again by the device after its chunk
// timeout, so the session is clean, and requests are taken at QoS 0: at QoS 1 the broker sends
// serve at most its in-flight window (Mosquitto: 20) unacknowledged and queues the rest, so
// serve's intake followed the round trip of its PUBACKs; under one device's flood that queue
// filled (1,000) and the broker dropped other devices' requests too, each a 10 s stall of their
// download (bench/fleet-share.ts: 1 download in 4; at QoS 0 none, serve taking every request
// at 7-13 µs each).
// Chunks go out in turns, a bounded queue per device and bounded bytes in flight (chunk-share.ts).
import type { MqttClient } from 'mqtt';
import type { Logger } from '../../../runtime/base/log.js';
import { parseTopic } from '../../protocol/topics.js';
import { connectBroker, endBroker } from '../broker/connect.js';
import type { BrokerOptions } from '../cli/options.js';
import { admitChunkRequest, answerChunkRequest, sendChunk, type ChunkServerContext } from './chunk-server.js';
import { ChunkShare } from './chunk-share.js';
import { IgnoredLog } from './ignored-log.js';
import { RequestCredit } from './request-credit.js';
import { countIgnored } from './stats.js';

export interface ChunkConnection {
  readonly client: MqttClient;
  readonly share: ChunkShare;
  stop(): Promise<void>;
}

/** Chunk bytes published and not yet acknowledged by the broker, at most (one chunk always may go). */
export const MAX_IN_FLIGHT_BYTES = 4 * 1024 * 1024;
/** How long stop() lets chunks in flight be acknowledged before closing the connection. */
const STOP_GRACE_MS = 2000;

export async function startChunkConnection(o: {
  broker: BrokerOptions;
  /** serve's --client-id plus `-chunks`, else a random id. */
  clientId?: string;
  /** The shared `models/request` filter of serve's group. */
  filter: string;
  prefix: string;
  log: Logger;
  /** Chunks one device may have waiting (--max-queued-chunks). */
  maxQueuedPerDevice: number;
  maxInFlightBytes?: number;
  /** Filled in with this connection's client. */
  context: (client: MqttClient) => Omit<ChunkServerContext, 'share' | 'credit' | 'ignored'>;
}): Promise<ChunkConnection> {
  const client = await connectBroker(o.broker, { ...(o.clientId ? { clientId: o.clientId } : {}), reconnectPeriodMs: 1000 });
  const base = o.context(client);
  const credit = new RequestCredit(o.maxQueuedPerDevice);
  const share = new ChunkShare({
    maxQueuedPerDevice: o.maxQueuedPerDevice,
    maxInFlightBytes: o.maxInFlightBytes ?? MAX_IN_FLIGHT_BYTES,
    send: (c) => {
      credit.refund(c.deviceId);
      return sendChunk(ctx, c);
    },
  });
  const ctx: ChunkServerContext = { ...base, share, credit, ignored: new IgnoredLog(o.log) };
  const pending = new Set<Promise<void>>();
  client.on('message', (topic, payload) => {
    const parsed = parseTopic(o.prefix, topic);
    if (parsed?.kind !== 'modelsRequest') return countIgnored(ctx.stats, 'topic');
    if (!admitChunkRequest(ctx, parsed.deviceId, topic)) return;
    const p = answerChunkRequest(ctx, parsed.deviceId, topic, payload).catch((err: unknown) => {
      countIgnored(ctx.stats, 'error');
      o.log.error({ err, topic }, 'chunk request failed');
    });
    pending.add(p);
    void p.finally(() => pending.delete(p));
  });
  const subscribe = async (): Promise<void> => {
    const granted = await client.subscribeAsync({ [o.filter]: { qos: 0 }, resubscribe: true } as unknown as Record<string, { qos: 0 }>);
    if (granted.some((g) => g.qos >= 0x80)) o.log.error({ refused: o.filter }, 'subscription refused by the broker (ACL?)');
  };
  await subscribe();
  client.on('connect', () => {
    subscribe().catch((err: unknown) => o.log.error({ err }, 'chunk requests: resubscribe failed'));
  });
  client.on('error', (err) => o.log.warn({ err: err.message }, 'mqtt error (chunk connection)'));
  return {
    client,
    share,
    async stop() {
      await Promise.allSettled([...pending]);
      // What waits is dropped (its devices ask again); what is in flight gets a bounded grace:
      // with the broker gone its PUBACKs never come.
      let timer: NodeJS.Timeout | undefined;
      const inFlight = await Promise.race([
        share.close().then(() => false),
        new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(true), STOP_GRACE_MS))),
      ]);
      clearTimeout(timer);
      await endBroker(client, inFlight);
    },
  };
}
