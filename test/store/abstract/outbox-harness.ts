// What the abstract outbox suites share: the harness each implementation provides, the limits
// they start from and small helpers to fill an outbox.
import type { OutboxLimits } from '../../../runtime/store/config.js';
import type { Outbox } from '../../../runtime/store/outbox.js';
import type { FakeClock } from '../../helpers/fake-clock.js';
import { withHarness } from './with-harness.js';

export interface OutboxHarness {
  outbox: Outbox;
  /** Closes the outbox and opens it again on the same storage (a restart); returns the new one. */
  reopen(): Promise<Outbox>;
  /** Closes and removes the storage. */
  destroy(): Promise<void>;
}

export type OutboxFactory = (opts: { clock: FakeClock; limits: OutboxLimits }) => Promise<OutboxHarness>;

export const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
// The product default strategy (refuse); the drop-oldest tests say so.
export const LIMITS: OutboxLimits = { maxEventBytes: 4096, ttlSeconds: 3600, maxBytes: 1024 * 1024, overflow: 'refuse', overflowByType: {} };
export const DROP_OLDEST: Partial<OutboxLimits> = { overflow: 'drop-oldest' };

export async function withOutbox(
  factory: OutboxFactory,
  fn: (h: OutboxHarness, clock: FakeClock) => Promise<void>,
  limits: Partial<OutboxLimits> = {},
): Promise<void> {
  return withHarness(factory, { ...LIMITS, ...limits }, fn);
}

export async function appendN(outbox: Outbox, n: number, type = 'test.event'): Promise<number[]> {
  const seqs: number[] = [];
  for (let i = 0; i < n; i++) seqs.push((await outbox.append(type, { i })).seq);
  return seqs;
}

export const seqsOf = (events: ReadonlyArray<{ seq: number }>) => events.map((e) => e.seq);
export const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

/** Payload of exactly `bytes` stored bytes with type 't' (1 byte): a JSON string of bytes - 3 chars. */
export const sized = (bytes: number) => 'x'.repeat(bytes - 3);
/** Appends an event of exactly `bytes` stored bytes (type + payload JSON). */
export const appendSized = (outbox: Outbox, type: string, bytes: number) => outbox.append(type, 'x'.repeat(bytes - 2 - type.length));
