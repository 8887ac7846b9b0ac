// Outbox -> MQTT (docs/protocol.md section 5, `P/devices/{id}/events`): while connected, claim the oldest
// events and publish them at QoS 1 in messages of `upload.batchSize`. With `cloud.delivery.ack`
// 'fleet' (the default) an event is deleted only once the fleet acknowledges that it stored it
// (`P/devices/{id}/events/ack`, awaiting-fleet.ts); PUBACKed events wait, claimed and marked
// sent, and are sent again, oldest first, if no ack comes in time. With 'broker' they are deleted
// at the broker's PUBACK. On a failure or a disconnect the unacknowledged claims are released,
// and being the oldest they are the first claimed again: at-least-once, in seq order, the fleet
// dedups on (deviceId, seq) (docs/cloud-sync.md "Delivery guarantee"). It wakes on the bus
// `event` topic instead of polling, and touches only the outbox and MQTT, never the inference path.
//
// Why a backlog drains at close to raw mqtt.js speed even at batchSize 1:
// - a window of messages is in flight at once (QoS 1 on one connection keeps publish order);
// - events are read from SQLite `readAhead` at a time, whatever the batch size, into a queue;
// - the JSON payloads go on the wire as stored (event-message.ts), no parse/stringify per event;
// - the window is refilled once per event-loop turn, so several messages share a socket write;
// - PUBACKed events are deleted in batches, one transaction each, not fsynced (ack-batcher.ts).
import { toPerchError } from '../../runtime/base/errors.js';
import type { TimerHandle } from '../../runtime/base/clock.js';
import type { OutboxEvent, RuntimePort } from '../../runtime/port/runtime-port.js';
import type { EventsAck } from '../protocol/index.js';
import { AckBatcher } from './ack-batcher.js';
import { AwaitingFleet, type SentBatch } from './awaiting-fleet.js';
import type { Connection } from './connection.js';
import { EventsEncoder } from './event-message.js';
import type { AgentStats } from './stats.js';
import { TokenBucket } from './token-bucket.js';
import { uploadSpan } from './upload-trace.js';

/** What of the runtime the uploader uses: the outbox, the live upload settings, cloud.delivery. */
export type UploaderRuntime = Pick<RuntimePort, 'device' | 'cloud' | 'clock' | 'log' | 'outbox' | 'liveConfig' | 'tracing'>;

export interface UploaderOptions {
  /** Messages published and not yet PUBACKed, at most (the broker window; 'fleet' mode adds cloud.delivery.maxAwaitingEvents). */
  maxInflightBatches?: number;
  /** Bytes of events per MQTT message, at most (one larger event still goes alone). */
  maxBatchBytes?: number;
  /** Events read from the outbox per claim (at least one batch). */
  readAhead?: number;
  /** PUBACKed events waiting that make the next delete happen at once. */
  ackBatch?: number;
  /** A PUBACKed event is deleted at the latest this long after its PUBACK. */
  ackDelayMs?: number;
}

const DEFAULTS = { maxInflightBatches: 64, maxBatchBytes: 1024 * 1024, readAhead: 512, ackBatch: 4096, ackDelayMs: 100 };
/** After a failed claim or a publish refused while connected: wait, do not spin. */
const RETRY_MS = 1000;

export class Uploader {
  private running = false;
  private wakeup: (() => void) | null = null;
  private woken = false;
  private loop: Promise<void> | null = null;
  /** Claimed and not yet published, in seq order, from `head` on. */
  private queue: OutboxEvent[] = [];
  private head = 0;
  /** Published messages not yet PUBACKed. */
  private readonly inflight = new Set<SentBatch>();
  /** Published and not yet acked by the fleet (in 'fleet' mode; PUBACK pending included). */
  private readonly fleet: AwaitingFleet | null;
  private readonly bucket: TokenBucket;
  private readonly acks: AckBatcher;
  private readonly encoder: EventsEncoder;
  private readonly opts: typeof DEFAULTS;
  private generation = 0;
  private wakePending = false;
  /** clock.now() before which nothing is published (after a publish refused while connected). */
  private retryAt = 0;
  private unsubscribe: (() => void)[] = [];
  private timer: TimerHandle | null = null;

  constructor(
    private readonly runtime: UploaderRuntime,
    private readonly conn: Connection,
    private readonly stats: AgentStats,
    opts: UploaderOptions = {},
  ) {
    this.opts = { ...DEFAULTS, ...Object.fromEntries(Object.entries(opts).filter(([, v]) => v !== undefined)) };
    this.bucket = new TokenBucket(runtime.clock, this.uploadConfig().maxEventsPerSecond);
    this.acks = new AckBatcher(runtime.outbox, runtime.clock, runtime.log, { maxPending: this.opts.ackBatch, maxDelayMs: this.opts.ackDelayMs });
    this.encoder = new EventsEncoder(runtime.device.id);
    const delivery = runtime.cloud.delivery;
    this.fleet = delivery.ack === 'fleet'
      ? new AwaitingFleet(runtime.clock, { ackTimeoutMs: delivery.ackTimeoutMs, maxResendMs: delivery.maxResendMs, maxEvents: delivery.maxAwaitingEvents })
      : null;
  }

  /** True when events wait for the fleet's ack (`cloud.delivery.ack` 'fleet'). */
  get fleetAcks(): boolean {
    return this.fleet !== null;
  }

  start(): void {
    this.unsubscribe = [
      this.runtime.outbox.onAppended(() => this.wake()),
      this.conn.onOnline(() => this.resume()),
      this.conn.onOffline(() => void this.pause()),
    ];
    if (this.conn.online) this.resume();
  }

  async stop(): Promise<void> {
    for (const off of this.unsubscribe) off();
    this.unsubscribe = [];
    await this.pause();
    // Nobody will hear the fleet's acks now: what waited for them is unclaimed (sent again later).
    const waiting = this.fleet?.clear() ?? [];
    if (waiting.length > 0) await this.runtime.outbox.release(waiting).catch((err: unknown) => this.runtime.log.warn({ err }, 'release failed'));
    await this.acks.flush();
    this.acks.stop();
  }

  /**
   * `P/devices/{id}/events/ack` from the fleet: deletes the events it names that this process
   * sent and still waits for; the rest are ignored (awaiting-fleet.ts).
   */
  onFleetAck(ack: EventsAck): void {
    if (!this.fleet) return;
    const seqs = this.fleet.acked(ack.ranges);
    this.stats.fleetAcks++;
    if (seqs.length === 0) return;
    this.stats.eventsAckedByFleet += seqs.length;
    this.acks.add(seqs);
    if (this.fleet.events === 0 && this.head >= this.queue.length) void this.acks.flush();
    this.wakeSoon();
  }

  private resume(): void {
    if (this.running) return;
    this.running = true;
    this.retryAt = 0; // a new connection starts at once
    this.fleet?.rearm();
    const gen = ++this.generation;
    this.loop = this.run(gen).catch((err: unknown) => {
      this.runtime.log.error({ err }, 'uploader stopped on an unexpected error');
    });
  }

  private async pause(): Promise<void> {
    const loop = this.loop;
    this.running = false;
    this.generation++;
    // Taken out now (synchronously), so a quick reconnect's new claims are never released here.
    // Not PUBACKed: released. PUBACKed and awaiting the fleet ('fleet' mode): kept, the ack may
    // still come through the session after the reconnect.
    const seqs = this.takeUnsent();
    for (const b of this.inflight) for (const seq of this.fleet ? this.fleet.drop(b) : b.seqs) seqs.push(seq);
    this.inflight.clear();
    this.wake();
    // PUBACKed ones are deleted, not released: they are the broker's now.
    const acked = this.acks.flush();
    if (seqs.length > 0) {
      await this.runtime.outbox.release(seqs).catch((err: unknown) => this.runtime.log.warn({ err }, 'release failed'));
    }
    await acked;
    await loop;
  }

  /** Empties the queue of claimed, unpublished events; returns their seqs (to release). */
  private takeUnsent(): number[] {
    const seqs: number[] = [];
    for (let i = this.head; i < this.queue.length; i++) seqs.push((this.queue[i] as OutboxEvent).seq);
    this.queue = [];
    this.head = 0;
    return seqs;
  }

  private wake(): void {
    this.woken = true;
    if (this.timer) this.runtime.clock.clearTimeout(this.timer);
    this.timer = null;
    const w = this.wakeup;
    this.wakeup = null;
    w?.();
  }

  /**
   * Sleeps until woken (new event, PUBACK, fleet ack, connectivity) or, if given, `ms` on the
   * clock; at the latest until the first re-send deadline.
   */
  private sleep(ms?: number): Promise<void> {
    const deadline = this.fleet?.nextDeadline();
    if (deadline !== undefined) {
      const toDeadline = Math.max(0, deadline - this.runtime.clock.now());
      ms = ms === undefined ? toDeadline : Math.min(ms, toDeadline);
    }
    if (this.woken) {
      this.woken = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      this.wakeup = () => {
        this.woken = false;
        resolve();
      };
      if (ms !== undefined) this.timer = this.runtime.clock.setTimeout(() => this.wake(), ms);
    });
  }

  private uploadConfig(): { batchSize: number; maxEventsPerSecond: number } {
    return this.runtime.liveConfig.current().cloud.upload;
  }

  private live(gen: number): boolean {
    return this.running && gen === this.generation;
  }

  private async run(gen: number): Promise<void> {
    while (this.live(gen)) {
      // Read every round: batch size and rate are live config.
      const { batchSize, maxEventsPerSecond } = this.uploadConfig();
      this.bucket.setRate(maxEventsPerSecond);
      const pause = this.retryAt - this.runtime.clock.now();
      if (pause > 0) {
        await this.sleep(pause);
        continue;
      }
      if (this.fleet && this.resendExpired()) continue;
      if (this.inflight.size >= this.opts.maxInflightBatches || this.fleet?.full) {
        await this.sleep();
        continue;
      }
      if (this.head >= this.queue.length && !(await this.refill(batchSize, gen))) continue;
      const allowed = Math.min(batchSize, this.bucket.available());
      if (allowed < 1) {
        await this.sleep(this.bucket.waitMs(1));
        continue;
      }
      this.send(this.nextBatch(allowed), gen);
    }
  }

  /** Claims the next events into the queue; false when there are none (it has slept by then). */
  private async refill(batchSize: number, gen: number): Promise<boolean> {
    this.woken = false;
    let events: OutboxEvent[];
    try {
      // Whole batches: a read of 512 would otherwise end in a short message at batchSize 100.
      const limit = Math.ceil(this.opts.readAhead / batchSize) * batchSize;
      events = await this.runtime.outbox.claim(limit, Math.max(this.opts.maxBatchBytes, 2 * 1024 * 1024));
    } catch (err) {
      // A store that fails now may recover (disk space freed): try again a second later.
      const e = toPerchError(err);
      this.runtime.log.warn({ code: e.code, err: e.message }, 'outbox claim failed; retrying');
      await this.sleep(RETRY_MS);
      return false;
    }
    if (!this.live(gen)) {
      await this.runtime.outbox.release(events.map((e) => e.seq));
      return false;
    }
    if (events.length === 0) {
      // Caught up: delete what is acked now rather than on the timer.
      if (this.inflight.size === 0) void this.acks.flush();
      await this.sleep();
      return false;
    }
    this.queue = events;
    this.head = 0;
    return true;
  }

  /** Up to `max` queued events, within maxBatchBytes (at least one); spends their tokens. */
  private nextBatch(max: number): OutboxEvent[] {
    const from = this.head;
    let to = from + 1;
    let bytes = (this.queue[from] as OutboxEvent).bytes;
    while (to < this.queue.length && to - from < max) {
      const b = (this.queue[to] as OutboxEvent).bytes;
      if (bytes + b > this.opts.maxBatchBytes) break;
      bytes += b;
      to++;
    }
    const batch = this.queue.slice(from, to);
    this.head = to;
    if (this.head >= this.queue.length) {
      this.queue = [];
      this.head = 0;
    }
    this.bucket.take(batch.length);
    return batch;
  }

  /**
   * Sends again, oldest first, what waited for the fleet past its deadline: released together
   * with the queue behind them, so the next claim starts at the oldest. They go through the same
   * window and rate limit as first sends (no burst at a broker that just came back). True when
   * some were released.
   */
  private resendExpired(): boolean {
    const fleet = this.fleet as AwaitingFleet;
    const deadline = fleet.nextDeadline();
    if (deadline === undefined || deadline > this.runtime.clock.now()) return false;
    const seqs = fleet.expired();
    if (seqs.length === 0) return false;
    this.stats.eventsResent += seqs.length;
    this.runtime.log.info({ count: seqs.length, from: seqs[0], nextTimeoutMs: fleet.timeoutMs() }, 'no fleet ack in time; sending again');
    void this.runtime.outbox.release([...seqs, ...this.takeUnsent()]).catch((err: unknown) => this.runtime.log.warn({ err }, 'release failed'));
    return true;
  }

  private send(events: OutboxEvent[], gen: number): void {
    const seqs = events.map((e) => e.seq);
    const batch: SentBatch = this.fleet ? this.fleet.track(seqs) : { seqs, deadline: Infinity, left: seqs.length, pubackAt: 0 };
    this.inflight.add(batch);
    const tracing = this.runtime.tracing;
    const upload = tracing?.enabled ? uploadSpan(tracing, events, this.runtime.cloud.protocolVersion === 5) : null;
    this.conn.publishThen(this.conn.topics.events, this.encoder.encode(events), false, (err) => {
      if (upload) tracing?.end(upload.span, err?.code, err?.message);
      if (err) this.onFailed(batch, gen, err);
      else this.onPuback(batch, gen);
    }, upload?.properties);
  }

  private onPuback(batch: SentBatch, gen: number): void {
    const seqs = batch.seqs as number[];
    this.stats.eventsPublished += seqs.length;
    this.stats.batchesPublished++;
    if (gen !== this.generation) {
      // Paused after publishing, and released. 'broker' mode: the broker has them all the same.
      // 'fleet' mode: they go again; the fleet's ack of this copy may still delete them first.
      if (!this.fleet) void this.runtime.outbox.ack(seqs).catch((err: unknown) => this.runtime.log.debug({ err }, 'late ack failed'));
      return;
    }
    this.inflight.delete(batch);
    if (this.fleet) {
      // Sent, awaiting the fleet: stays claimed; only the fleet's ack deletes it.
      if (this.fleet.published(batch)) this.runtime.outbox.markSent(seqs);
      this.wakeSoon();
      return;
    }
    this.acks.add(seqs);
    // The end of a burst: nothing in flight or queued, so no reason to hold the deletes back.
    if (this.inflight.size === 0 && this.head >= this.queue.length) void this.acks.flush();
    this.wakeSoon();
  }

  /**
   * Wakes the loop once the PUBACKs read together have all been handled (setImmediate runs after
   * this turn's I/O callbacks): the window is then refilled with several messages at once, which
   * mqtt.js writes to the socket in one go, instead of one write per PUBACK.
   */
  private wakeSoon(): void {
    if (this.wakePending) return;
    this.wakePending = true;
    setImmediate(() => {
      this.wakePending = false;
      this.wake();
    });
  }

  private onFailed(batch: SentBatch, gen: number, err: unknown): void {
    const e = toPerchError(err);
    if (!this.inflight.delete(batch)) return; // pause() released them already
    const seqs = this.fleet ? this.fleet.drop(batch) : (batch.seqs as number[]);
    // Released together with the queue behind them, so they go out again in seq order.
    const release = [...seqs, ...this.takeUnsent()];
    this.runtime.log.debug({ code: e.code, err: e.message, from: seqs[0], count: seqs.length }, 'event batch not delivered; released');
    this.runtime.outbox.release(release).catch((relErr: unknown) => this.runtime.log.warn({ err: relErr }, 'release failed'));
    // A publish refused while still connected (e.g. a payload the broker will not take) must not spin.
    if (gen === this.generation && this.conn.online) {
      this.runtime.log.warn({ code: e.code, err: e.message }, 'event batch publish failed');
      this.retryAt = this.runtime.clock.now() + RETRY_MS;
    }
    this.wake();
  }
}
