// The fleet's side of end-to-end delivery (docs/cloud-sync.md "Delivery guarantee"): once a batch
// of events is committed to fleet.db, `P/devices/{id}/events/ack` tells the device which seqs the
// fleet holds, so it may delete them. Re-sent events already stored are acked again (the device
// lost the first ack, or the broker did). The acks of ACK_DELAY_MS are merged per device into one
// message of ranges: a device uploading at batch size 1 gets a few acks a second instead of one
// per message (per event-loop turn was still one ack per one or two messages under load, and
// the device spent as long reading acks as sending events; docs/benchmarks.md).
//
// An ack that never arrives (this process killed after the commit, a broker restart) costs a
// re-send, which the (deviceId, seq) key makes a duplicate that is not stored twice.
import type { MqttClient } from 'mqtt';
import type { Logger } from '../../../runtime/base/log.js';
import { MAX_ACK_RANGES, type EventsAck } from '../../protocol/schemas.js';
import { toRanges } from '../../protocol/ranges.js';
import { topics } from '../../protocol/topics.js';
import type { ServeStats } from './stats.js';

const QOS1 = { qos: 1, retain: false } as const;
/** Acks wait at most this long to be merged; far below the device's re-send timeout (10 s). */
export const ACK_DELAY_MS = 25;

export class FleetAcker {
  private pending = new Map<string, number[]>();
  private scheduled = false;

  constructor(
    private readonly client: MqttClient,
    private readonly prefix: string,
    private readonly log: Logger,
    private readonly stats: ServeStats,
  ) {}

  /** Committed seqs of a device: acked at the end of this turn. */
  add(deviceId: string, seqs: readonly number[]): void {
    let list = this.pending.get(deviceId);
    if (!list) this.pending.set(deviceId, (list = []));
    for (const s of seqs) list.push(s);
    if (this.scheduled) return;
    this.scheduled = true;
    setTimeout(() => this.flush(), ACK_DELAY_MS).unref();
  }

  /** Publishes what is pending. QoS 1: mqtt.js queues it while the broker is away. */
  flush(): void {
    this.scheduled = false;
    const pending = this.pending;
    this.pending = new Map();
    for (const [deviceId, seqs] of pending) {
      const ranges = toRanges(seqs);
      const topic = topics(this.prefix, deviceId).eventsAck;
      for (let i = 0; i < ranges.length; i += MAX_ACK_RANGES) {
        const ack: EventsAck = { ranges: ranges.slice(i, i + MAX_ACK_RANGES) };
        this.stats.acksSent++;
        this.client.publish(topic, JSON.stringify(ack), QOS1, (err) => {
          // Not fatal: the device sends the events again and they are acked then.
          if (err) this.log.debug({ deviceId, err: err.message }, 'events ack not published');
        });
      }
    }
  }
}
