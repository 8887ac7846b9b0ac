// The events of one simulated device (sim-device.ts): seqs rising by 1, each event kept until
// the fleet acks it (docs/cloud-sync.md "Delivery guarantee") and sent again, oldest first, a
// batch per tick, when no ack came within the ack timeout; `--events-per-second` ticks on top
// of the model.update.* and command.* events the device records.
import { randomUUID } from 'node:crypto';
import type { MqttClient } from 'mqtt';
import type { EventsAck } from '../../protocol/schemas.js';
import type { SimStats } from './sim-stats.js';

export interface SimEventOptions {
  deviceId: string;
  /** The device's `P/devices/{id}/events` topic. */
  topic: string;
  /** Events per second (0: none), as batches of eventsPerBatch. */
  eventsPerSecond: number;
  eventsPerBatch: number;
  /** Events held unacked at most; more are not generated until acks free room (counted). */
  maxAwaitingEvents: number;
  ackTimeoutMs: number;
  /** 0..1: where in each second this device's tick falls (spread over the fleet). */
  phase: number;
  stats: SimStats;
}

interface SimEvent {
  id: string;
  seq: number;
  ts: number;
  type: string;
  payload: unknown;
}

export class SimEvents {
  private seq = 0;
  /** seq -> the event and when it was last sent (ms), in seq order: kept until the fleet acks it. */
  private readonly awaiting = new Map<number, { at: number; event: SimEvent }>();
  private timer: NodeJS.Timeout | null = null;
  private credit = 0;

  constructor(
    private readonly o: SimEventOptions,
    private readonly client: () => MqttClient | null,
  ) {}

  /** Events not acked yet (the status and reported `outbox.count`). */
  get unacked(): number {
    return this.awaiting.size;
  }

  /** Starts the ticks once (on the first connect). */
  start(): void {
    if (this.o.eventsPerSecond <= 0 || this.timer) return;
    // Ticks of 1 s, phase spread over the fleet so 10,000 devices do not send in one burst.
    this.timer = setTimeout(() => {
      this.timer = setInterval(() => this.tick(), 1000);
      this.timer.unref();
    }, Math.floor(this.o.phase * 1000));
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
  }

  record(type: string, payload: Record<string, unknown>): void {
    this.send([{ type, payload }]);
  }

  /** The fleet holds these seqs: forget them. */
  acked(ack: EventsAck): void {
    for (const [from, to] of ack.ranges) {
      // Ranges may be wide (a fleet acking what it holds): walk the smaller side.
      if (to - from + 1 < this.awaiting.size) for (let s = from; s <= to; s++) this.awaiting.delete(s);
      else for (const s of this.awaiting.keys()) if (s >= from && s <= to) this.awaiting.delete(s);
    }
    this.o.stats.acksReceived++;
  }

  private tick(): void {
    this.credit += this.o.eventsPerSecond;
    const n = Math.floor(this.credit);
    this.credit -= n;
    for (let left = n; left > 0; left -= this.o.eventsPerBatch) {
      this.send(Array.from({ length: Math.min(left, this.o.eventsPerBatch) }, () => ({ type: 'sim.tick', payload: null })));
    }
    this.resendExpired();
  }

  private send(items: Array<{ type: string; payload: unknown }>): void {
    const room = this.o.maxAwaitingEvents - this.awaiting.size;
    if (room < items.length) {
      this.o.stats.eventsNotGenerated += items.length - Math.max(0, room);
      items = items.slice(0, Math.max(0, room));
    }
    if (items.length === 0) return;
    const now = Date.now();
    const events = items.map((e): SimEvent => ({ id: randomUUID(), seq: ++this.seq, ts: now, type: e.type, payload: e.payload }));
    for (const event of events) this.awaiting.set(event.seq, { at: now, event });
    this.publish(events);
  }

  private publish(events: SimEvent[]): void {
    const client = this.client();
    if (!client?.connected) return; // kept in `awaiting`: re-sent after the ack timeout
    this.o.stats.eventsSent += events.length;
    client.publish(this.o.topic, JSON.stringify({ deviceId: this.o.deviceId, events }), { qos: 1 });
  }

  /** Events with no ack after ackTimeoutMs go again, the same events, oldest first, a batch per tick. */
  private resendExpired(): void {
    const now = Date.now();
    const late: SimEvent[] = [];
    for (const a of this.awaiting.values()) {
      if (now - a.at < this.o.ackTimeoutMs) continue;
      a.at = now;
      late.push(a.event);
      if (late.length >= this.o.eventsPerBatch) break;
    }
    if (late.length === 0) return;
    this.o.stats.eventsResent += late.length;
    this.publish(late);
  }
}
