// The event outbox interface: what the `emit` op, the runtime's own events and the uploader
// (cloud sync) rely on. test/store/abstract/outbox-suite.ts checks any implementation of it.
import type { OutboxLimits } from './config.js';

export interface AppendResult {
  /** UUID v4, unique per event, for dedup on the cloud side. */
  eventId: string;
  /** Per-device sequence number: rises by exactly 1 per event, never repeats, also across restarts. */
  seq: number;
}

export interface OutboxEvent {
  seq: number;
  eventId: string;
  type: string;
  /** The payload, parsed from `payloadJson` (on first read: an uploader that forwards the JSON never pays for it). */
  readonly payload: unknown;
  /** The payload exactly as stored: the JSON text append() made of it. */
  payloadJson: string;
  /** Wall-clock epoch ms of the commit. */
  createdAt: number;
  /** What the byte budget counts for it: UTF-8 bytes of type + payload JSON. */
  bytes: number;
  /** W3C traceparent of the span that appended it (docs/observability.md); null when untraced. */
  traceparent: string | null;
}

/** Events dropped by retention in one go; a listener gets one of these per sweep or commit that dropped. */
export interface DropCounts {
  ttl: number;
  overflow: number;
  bytes: number;
  /**
   * The same events (both reasons) by type, as the overflow config names it: the
   * `store.outbox.overflowByType` key that matched, or "*" for the default (outbox-overflow.ts).
   */
  byType: Record<string, number>;
}

/** Per type label (see DropCounts.byType): what retention dropped and what the budget refused. */
export interface TypeCounts {
  ttl: number;
  overflow: number;
  refused: number;
}

export type DropListener = (drop: DropCounts) => void;

export interface OutboxStats {
  /** Events stored (claimed ones included, until acked). */
  count: number;
  /** Sum of their `bytes`. */
  bytes: number;
  /** Age of the oldest stored event; 0 when empty. */
  oldestAgeMs: number;
  /** Claimed, neither acked nor released (sent ones included). */
  inFlight: number;
  /** Of those, sent and awaiting the cloud's confirmation (markSent); the rest are not sent yet. */
  sent: number;
  /** Highest seq assigned so far (0 before the first event). */
  lastSeq: number;
  /** Events dropped by retention since this outbox was opened, by reason. */
  dropped: { ttl: number; overflow: number };
  /** Appends refused with PERCH_ERR_STORE_FULL because the budget was spent (strategy `refuse`), since open. */
  refused: number;
  /** The drops and refusals by type label since open (only labels that have any). */
  byType: Record<string, TypeCounts>;
  /** Write transactions committed or attempted for appends (group commits) since open. */
  commits: number;
}

export interface Outbox {
  /**
   * Resolves once the event is committed durably; rejects with a PERCH_ERR_* code otherwise (no
   * seq used). Over the byte budget: PERCH_ERR_STORE_FULL unless the type's overflow strategy is
   * drop-oldest and dropping older drop-oldest events makes room (docs/store.md "Retention").
   */
  append(type: string, payload: unknown, traceparent?: string | null): Promise<AppendResult>;
  /**
   * The oldest unclaimed events in seq order, at most `limit`, and at most `maxBytes` in total
   * (but always at least one event if any is unclaimed, so a large event cannot block the queue).
   * They stay stored and count as in flight until acked or released. In-flight marks are kept
   * in memory: after a restart every stored event is unclaimed again (at-least-once delivery).
   */
  claim(limit: number, maxBytes?: number): Promise<OutboxEvent[]>;
  /**
   * Reads, without claiming, up to `limit` stored events with seq > `after`, in seq order: what an
   * SSE reader resumes from (`Last-Event-ID`, docs/api.md). Events already acked or dropped are
   * gone, so seqs may jump.
   */
  readAfter(after: number, limit: number): Promise<OutboxEvent[]>;
  /**
   * Deletes these events (the cloud has them); unknown seqs are ignored. Resolves to how many were
   * deleted, once committed. The commit need not be fsynced: a power cut right after may bring
   * the events back (they are sent again, at-least-once), but never loses any other event.
   */
  ack(seqs: readonly number[]): Promise<number>;
  /**
   * Marks claimed events as sent, awaiting the cloud's confirmation (for stats only: they stay
   * claimed until acked or released). A release makes them unsent again. In memory, like claims.
   */
  markSent(seqs: readonly number[]): void;
  /** Makes claimed events claimable again; being the oldest, they are the next ones claimed. */
  release(seqs: readonly number[]): Promise<void>;
  /** Applies the TTL and the byte budget now. Listeners hear about any drop as well. */
  sweep(): Promise<DropCounts>;
  /** New retention limits and overflow strategies; they apply from the next append or sweep. */
  setLimits(limits: Partial<OutboxLimits>): void;
  /** Cheap: running totals, no table scan. */
  stats(): OutboxStats;
  /** Called after every commit or sweep that dropped events; returns an unsubscribe function. */
  onDrop(listener: DropListener): () => void;
  /** Commits what is pending, then refuses new appends. */
  close(): Promise<void>;
}
