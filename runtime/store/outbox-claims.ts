// Which outbox events are claimed (in flight), and where the next claim starts reading. Kept in
// memory only: after a restart every stored event is unclaimed again (at-least-once).
//
// The cursor is why a claim costs the batch it returns and not the backlog before it: every
// stored seq <= cursor is in flight (or gone), so a claim reads from `seq > cursor`. An uploader
// with many batches in flight used to scan past all of them on every claim. A release below the
// cursor moves it back, so released events (the oldest) are the next ones claimed; the rows in
// between that are still in flight are skipped by that one claim.
import type { OutboxEvent } from './outbox.js';

export class ClaimTracker {
  private readonly inFlight = new Set<number>();
  /** Claimed ones the uploader handed over and now awaits a confirmation for (a subset of inFlight). */
  private readonly sentSeqs = new Set<number>();
  private cursorSeq = 0;

  get size(): number {
    return this.inFlight.size;
  }

  get sent(): number {
    return this.sentSeqs.size;
  }

  /** Claimed seqs now awaiting their confirmation; unclaimed ones are ignored. */
  markSent(seqs: Iterable<number>): void {
    for (const seq of seqs) if (this.inFlight.has(seq)) this.sentSeqs.add(seq);
  }

  /** Claims read from seqs above this one. */
  get cursor(): number {
    return this.cursorSeq;
  }

  has(seq: number): boolean {
    return this.inFlight.has(seq);
  }

  /**
   * Marks a claim: `seqs` are now in flight, and every stored seq up to `readUpTo` is either in
   * flight or was skipped because it already was.
   */
  claimed(seqs: readonly number[], readUpTo: number): void {
    for (const seq of seqs) this.inFlight.add(seq);
    if (readUpTo > this.cursorSeq) this.cursorSeq = readUpTo;
  }

  /** Makes them claimable again, first in line. */
  release(seqs: Iterable<number>): void {
    for (const seq of seqs) {
      this.sentSeqs.delete(seq);
      if (this.inFlight.delete(seq) && seq <= this.cursorSeq) this.cursorSeq = seq - 1;
    }
  }

  /** The events are gone (acked or dropped): nothing to claim again. */
  forget(seqs: Iterable<number>): void {
    for (const seq of seqs) {
      this.inFlight.delete(seq);
      this.sentSeqs.delete(seq);
    }
  }

  forgetUpTo(upTo: number): void {
    if (upTo <= 0 || this.inFlight.size === 0) return;
    for (const seq of this.inFlight) {
      if (seq <= upTo) {
        this.inFlight.delete(seq);
        this.sentSeqs.delete(seq);
      }
    }
  }
}

/** A claimed row. The payload is parsed only if someone reads it. */
export class StoredEvent implements OutboxEvent {
  private parsed: { value: unknown } | null = null;

  constructor(
    readonly seq: number,
    readonly eventId: string,
    readonly type: string,
    readonly payloadJson: string,
    readonly createdAt: number,
    readonly bytes: number,
    readonly traceparent: string | null = null,
  ) {}

  get payload(): unknown {
    this.parsed ??= { value: JSON.parse(this.payloadJson) as unknown };
    return this.parsed.value;
  }
}

/** Sorted runs of consecutive seqs ([from, to] pairs), duplicates removed: one DELETE per run. */
export function seqRuns(seqs: readonly number[]): [number, number][] {
  if (seqs.length === 0) return [];
  const sorted = Float64Array.from(seqs).sort();
  const runs: [number, number][] = [];
  let from = sorted[0] as number;
  let to = from;
  for (let i = 1; i < sorted.length; i++) {
    const s = sorted[i] as number;
    if (s === to || s === to + 1) to = s;
    else {
      runs.push([from, to]);
      from = to = s;
    }
  }
  runs.push([from, to]);
  return runs;
}
