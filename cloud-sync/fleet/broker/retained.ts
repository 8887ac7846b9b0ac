// Reading retained documents (status, reported, desired) without waiting out a timer: subscribe
// to the filters and to a private probe topic, then publish to the probe. Mosquitto sends the
// retained messages of a SUBSCRIBE before it handles the next packet of the same connection, so
// once the probe comes back every retained message has arrived. The deadline is only a backstop.
import { randomBytes } from 'node:crypto';
import type { MqttClient } from 'mqtt';
import { PerchError } from '../../../runtime/base/errors.js';

export interface RetainedMessage {
  topic: string;
  payload: Buffer;
}

export async function readRetained(client: MqttClient, prefix: string, filters: string[], timeoutMs: number): Promise<RetainedMessage[]> {
  const probe = `${prefix}/fleet/probe/${client.options.clientId ?? 'fleet'}-${randomBytes(4).toString('hex')}`;
  const got: RetainedMessage[] = [];
  let onMessage: ((topic: string, payload: Buffer, packet: { retain: boolean }) => void) | undefined;
  let timer: NodeJS.Timeout | undefined;
  const done = new Promise<void>((resolve, reject) => {
    timer = setTimeout(
      () => reject(new PerchError('PERCH_ERR_BROKER_UNREACHABLE', `the broker did not answer within ${timeoutMs} ms`)),
      timeoutMs,
    );
    onMessage = (topic, payload, packet) => {
      if (topic === probe) {
        clearTimeout(timer);
        resolve();
      } else if (packet.retain && payload.length > 0) {
        got.push({ topic, payload });
      }
    };
    client.on('message', onMessage);
  });
  try {
    const granted = await client.subscribeAsync([...filters, probe], { qos: 1 });
    const refused = granted.filter((g) => g.qos >= 0x80);
    if (refused.length) throw new PerchError('PERCH_ERR_BROKER_UNREACHABLE', `the broker refused to subscribe to ${refused.map((g) => g.topic).join(', ')} (ACL?)`);
    await client.publishAsync(probe, '', { qos: 1 });
    await done;
    await client.unsubscribeAsync([...filters, probe]);
    return got;
  } finally {
    clearTimeout(timer);
    if (onMessage) client.off('message', onMessage);
    done.catch(() => undefined);
  }
}
