// Outbox -> MQTT (PROTOCOL section 5, `P/devices/{id}/events`): while connected, claim the oldest
// events in batches, publish at QoS 1, and delete them only after the broker's PUBACK. On a
// failure or a disconnect the claimed events are released, and being the oldest they are the
// first claimed again: at-least-once, in seq order, consumers dedup on (deviceId, seq).
// Several batches may be in flight at once (QoS 1 publishes on one connection are delivered in
// order), so a backlog drains at close to raw publishing speed. It wakes on the bus `event`
// topic instead of polling, and touches only the outbox and MQTT, never the inference path.
import { toPerchError } from '../../runtime/errors.js';
import type { TimerHandle } from '../../runtime/clock.js';
import type { EventMessage, EventsMessage } from '../protocol/index.js';
import type { Connection } from './connection.js';
import type { RuntimePort } from './runtime-port.js';
import type { AgentStats } from './stats.js';
import { TokenBucket } from './token-bucket.js';

export interface UploaderOptions {
  /** Batches published and not yet acknowledged, at most. */
  maxInflightBatches?: number;
  /** Bytes of events per MQTT message, at most (one larger event still goes alone). */
  maxBatchBytes?: number;
}

export class Uploader {
  private running = false;
  private wakeup: (() => void) | null = null;
  private woken = false;
  private loop: Promise<void> | null = null;
  /** seqs of each unacknowledged batch. */
  private readonly inflight = new Set<number[]>();
  private readonly bucket: TokenBucket;
  private generation = 0;
  private unsubscribe: (() => void)[] = [];
  private timer: TimerHandle | null = null;

  constructor(
    private readonly port: RuntimePort,
    private readonly conn: Connection,
    private readonly stats: AgentStats,
    private readonly opts: UploaderOptions = {},
  ) {
    this.bucket = new TokenBucket(port.clock, this.uploadConfig().maxEventsPerSecond);
  }

  start(): void {
    this.unsubscribe = [
      this.port.bus.on('event', () => this.wake()),
      this.conn.onOnline(() => this.resume()),
      this.conn.onOffline(() => this.pause()),
    ];
    if (this.conn.online) this.resume();
  }

  async stop(): Promise<void> {
    for (const off of this.unsubscribe) off();
    this.unsubscribe = [];
    await this.pause();
  }

  /** Events claimed and not yet acknowledged. */
  get inflightEvents(): number {
    let n = 0;
    for (const b of this.inflight) n += b.length;
    return n;
  }

  private resume(): void {
    if (this.running) return;
    this.running = true;
    const gen = ++this.generation;
    this.loop = this.run(gen).catch((err: unknown) => {
      this.port.log.error({ err }, 'uploader stopped on an unexpected error');
    });
  }

  private async pause(): Promise<void> {
    const loop = this.loop;
    this.running = false;
    this.generation++;
    // Taken out now, so a quick reconnect's new batches are never released by this pause.
    const seqs = [...this.inflight].flat();
    this.inflight.clear();
    this.wake();
    if (seqs.length > 0) {
      await this.port.outbox.release(seqs).catch((err: unknown) => this.port.log.warn({ err }, 'release failed'));
    }
    await loop;
  }

  private wake(): void {
    this.woken = true;
    if (this.timer) this.port.clock.clearTimeout(this.timer);
    this.timer = null;
    const w = this.wakeup;
    this.wakeup = null;
    w?.();
  }

  /** Sleeps until woken (new event, ack, connectivity) or, if given, `ms` on the clock. */
  private sleep(ms?: number): Promise<void> {
    if (this.woken) {
      this.woken = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      this.wakeup = () => {
        this.woken = false;
        resolve();
      };
      if (ms !== undefined) this.timer = this.port.clock.setTimeout(() => this.wake(), ms);
    });
  }

  private uploadConfig(): { batchSize: number; maxEventsPerSecond: number } {
    return this.port.liveConfig.current().cloud.upload;
  }

  private async run(gen: number): Promise<void> {
    const maxInflight = this.opts.maxInflightBatches ?? 32;
    while (this.running && gen === this.generation) {
      // Read every round: batch size and rate are live config.
      const { batchSize, maxEventsPerSecond } = this.uploadConfig();
      this.bucket.setRate(maxEventsPerSecond);
      if (this.inflight.size >= maxInflight) {
        await this.sleep();
        continue;
      }
      const allowed = Math.min(batchSize, this.bucket.available());
      if (allowed < 1) {
        await this.sleep(this.bucket.waitMs(1));
        continue;
      }
      this.woken = false;
      let events: Awaited<ReturnType<RuntimePort['outbox']['claim']>>;
      try {
        events = await this.port.outbox.claim(allowed, this.opts.maxBatchBytes ?? 1024 * 1024);
      } catch (err) {
        // A store that fails now may recover (disk space freed): try again a second later.
        this.port.log.warn({ code: toPerchError(err).code, err: toPerchError(err).message }, 'outbox claim failed; retrying');
        await this.sleep(1000);
        continue;
      }
      if (!this.running || gen !== this.generation) {
        await this.port.outbox.release(events.map((e) => e.seq));
        return;
      }
      if (events.length === 0) {
        await this.sleep();
        continue;
      }
      this.bucket.take(events.length);
      this.send(events, gen);
    }
  }

  private send(events: Awaited<ReturnType<RuntimePort['outbox']['claim']>>, gen: number): void {
    const seqs = events.map((e) => e.seq);
    this.inflight.add(seqs);
    const message: EventsMessage = {
      deviceId: this.port.deviceId,
      events: events.map((e): EventMessage => ({ id: e.eventId, seq: e.seq, ts: e.createdAt, type: e.type, payload: e.payload })),
    };
    this.conn
      .publish(this.conn.topics.events, JSON.stringify(message))
      .then(async () => {
        // PUBACK: the broker owns them now.
        this.inflight.delete(seqs);
        this.stats.eventsPublished += seqs.length;
        this.stats.batchesPublished++;
        await this.port.outbox.ack(seqs);
      })
      .catch(async (err: unknown) => {
        const e = toPerchError(err);
        if (this.inflight.delete(seqs)) {
          this.port.log.debug({ code: e.code, err: e.message, from: seqs[0], count: seqs.length }, 'event batch not delivered; released');
          await this.port.outbox.release(seqs).catch((relErr: unknown) => this.port.log.warn({ err: relErr }, 'release failed'));
        }
        // A publish that failed while still connected (e.g. a refused payload) must not spin.
        if (gen === this.generation && this.conn.online) this.port.log.warn({ code: e.code, err: e.message }, 'event batch publish failed');
      })
      .finally(() => this.wake());
  }
}
