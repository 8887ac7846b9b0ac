// Event batches the device has published and the fleet has not acknowledged yet (docs/cloud-sync.md
// "Delivery guarantee"). A broker's PUBACK is not the fleet's: Mosquitto forgets shared
// subscriptions across a restart and a crash loses what it acknowledged but had not saved. So an
// event stays in the outbox (claimed, marked sent) until `P/devices/{id}/events/ack` names its seq,
// and a batch without an ack after the timeout is handed back to be sent again, oldest first.
//
// Acks are ranges of seqs the fleet has committed, taken as facts: in any order, overlapping,
// repeated (two serve processes, re-sends), or naming seqs this process never sent (a previous
// boot's, before a restart): only seqs tracked here count, the rest are ignored. That also bounds
// what a hostile ack can make the device delete to what it has sent and is waiting for anyway.
//
// The timeout doubles with every round that expires without any ack in between (fleet down: a
// re-send every 10 s, 20 s, ... up to maxResendMs, not a flood), and is back to its base at the
// first ack. Its base is ackTimeoutMs, or three times the smoothed time from PUBACK to fleet ack
// if that is longer (like TCP's RTO): a fleet that is slow but working, with a backlog of its
// own, gets more time instead of every waiting event a second time.
import type { Clock } from '../../runtime/base/clock.js';

export interface AwaitingFleetOptions {
  ackTimeoutMs: number;
  maxResendMs: number;
  /** Events published and not acked by the fleet, at most (the end-to-end window). */
  maxEvents: number;
}

export interface SentBatch {
  readonly seqs: readonly number[];
  /** clock.now() after which it is sent again; Infinity while its PUBACK is awaited. */
  deadline: number;
  /** Its seqs still tracked (not acked, not dropped). */
  left: number;
  /** clock.now() at its PUBACK. */
  pubackAt: number;
}

export class AwaitingFleet {
  /** Every tracked seq -> its batch: published (PUBACK pending) or awaiting the fleet. */
  private readonly bySeq = new Map<number, SentBatch>();
  /** PUBACKed batches waiting for the fleet, oldest first. */
  private readonly awaiting = new Set<SentBatch>();
  /** Expiry rounds in a row without an ack between them. */
  private misses = 0;
  /** Smoothed ms from PUBACK to the fleet's ack of a whole batch (0 before the first). */
  private srtt = 0;

  constructor(
    private readonly clock: Clock,
    private readonly opts: AwaitingFleetOptions,
  ) {}

  /** Events published and not acked by the fleet. */
  get events(): number {
    return this.bySeq.size;
  }

  get full(): boolean {
    return this.bySeq.size >= this.opts.maxEvents;
  }

  /** The current re-send timeout. */
  timeoutMs(): number {
    const base = Math.max(this.opts.ackTimeoutMs, 3 * this.srtt);
    return Math.min(base * 2 ** Math.min(this.misses, 30), this.opts.maxResendMs);
  }

  /** A batch being published. */
  track(seqs: readonly number[]): SentBatch {
    const batch: SentBatch = { seqs, deadline: Infinity, left: seqs.length, pubackAt: 0 };
    for (const s of seqs) this.bySeq.set(s, batch);
    return batch;
  }

  /** Its PUBACK came: now it waits for the fleet, at most the timeout. False when nothing of it is tracked any more. */
  published(batch: SentBatch): boolean {
    if (batch.left <= 0) return false;
    batch.pubackAt = this.clock.now();
    batch.deadline = batch.pubackAt + this.timeoutMs();
    this.awaiting.add(batch);
    return true;
  }

  /** Forgets a batch (publish failed, link lost); returns its seqs still tracked, to release. */
  drop(batch: SentBatch): number[] {
    this.awaiting.delete(batch);
    const out: number[] = [];
    for (const s of batch.seqs) {
      if (this.bySeq.get(s) === batch) {
        this.bySeq.delete(s);
        out.push(s);
      }
    }
    batch.left = 0;
    return out;
  }

  /** The seqs of `ranges` that were tracked (each forgotten): the ones to delete from the outbox. */
  acked(ranges: readonly (readonly [number, number])[]): number[] {
    const out: number[] = [];
    for (const [from, to] of ranges) {
      if (to - from + 1 <= this.bySeq.size) {
        for (let s = from; s <= to; s++) this.ackOne(s, out);
      } else {
        // A wide range (after a restart, or hostile): walk what is tracked instead.
        for (const s of [...this.bySeq.keys()]) if (s >= from && s <= to) this.ackOne(s, out);
      }
    }
    if (out.length > 0) this.misses = 0;
    return out;
  }

  private ackOne(seq: number, out: number[]): void {
    const batch = this.bySeq.get(seq);
    if (!batch) return;
    this.bySeq.delete(seq);
    out.push(seq);
    if (--batch.left > 0) return;
    if (this.awaiting.delete(batch)) {
      const sample = this.clock.now() - batch.pubackAt;
      this.srtt = this.srtt === 0 ? sample : (7 * this.srtt + sample) / 8;
    }
  }

  /**
   * The oldest awaiting batch's deadline (undefined when none waits). Deadlines rise in PUBACK
   * order except after the timeout fell back to its base at an ack: a younger batch then waits
   * for the oldest one's deadline, at most maxResendMs. Cheap: the uploader asks at every sleep.
   */
  nextDeadline(): number | undefined {
    for (const b of this.awaiting) return b.deadline;
    return undefined;
  }

  /**
   * The seqs of every awaiting batch past its deadline, forgotten (to release and send again,
   * oldest first); each round that finds some doubles the next timeout until an ack comes.
   */
  expired(): number[] {
    const now = this.clock.now();
    const out: number[] = [];
    for (const b of this.awaiting) if (b.deadline <= now) for (const s of this.drop(b)) out.push(s);
    if (out.length > 0) this.misses++;
    return out.sort((a, b) => a - b);
  }

  /** After a reconnect: acks the fleet sent meanwhile come through the session; give them a full timeout. */
  rearm(): void {
    const now = this.clock.now();
    const deadline = now + this.timeoutMs();
    for (const b of this.awaiting) {
      b.deadline = deadline;
      b.pubackAt = now; // the outage is not the fleet's latency
    }
  }

  /** Forgets everything; returns every tracked seq (to release). */
  clear(): number[] {
    const out = [...this.bySeq.keys()];
    this.bySeq.clear();
    this.awaiting.clear();
    return out;
  }
}
