// Turns retention drops into `outbox.dropped` events, coalesced. Reporting each drop at once
// would loop when the backlog sits at its byte budget: the report event itself pushes the
// oldest event out, which is another drop to report. So drops are summed and reported at most
// once per interval (the first one right away), which bounds that loop to one event per interval.
// The event goes to the fleet like any other (docs/cloud-sync.md). When the outbox cannot take
// it (full of events that are never dropped, or a full disk), the counts are kept and the report
// is tried again an interval later, so a drop is never left unreported while the runtime runs.
import { systemClock, type Clock, type TimerHandle } from '../base/clock.js';
import { toPerchError } from '../base/errors.js';
import { silentLogger, type Logger } from '../base/log.js';
import type { DropCounts, Outbox } from './outbox.js';

export const OUTBOX_DROPPED_EVENT = 'outbox.dropped';

export interface DropReporterOptions {
  clock?: Clock;
  logger?: Logger;
  /** Least time between two reports. */
  minIntervalMs?: number;
}

export interface DropReporter {
  /** Reports what is pending now (at shutdown, before the outbox closes); then unsubscribes. */
  stop(): Promise<void>;
}

/**
 * Payload of an `outbox.dropped` event: events dropped since the last report, by reason, their
 * bytes, and by type as `store.outbox.overflowByType` names it ("*": types the default covers).
 */
export type DroppedPayload = DropCounts;

const nothing = (): DropCounts => ({ ttl: 0, overflow: 0, bytes: 0, byType: {} });

function add(a: DropCounts, b: DropCounts): DropCounts {
  const byType = { ...a.byType };
  for (const [label, n] of Object.entries(b.byType)) byType[label] = (byType[label] ?? 0) + n;
  return { ttl: a.ttl + b.ttl, overflow: a.overflow + b.overflow, bytes: a.bytes + b.bytes, byType };
}

export function startDropReporter(outbox: Outbox, opts: DropReporterOptions = {}): DropReporter {
  const clock = opts.clock ?? systemClock;
  const logger = opts.logger ?? silentLogger();
  const interval = opts.minIntervalMs ?? 60_000;
  let pending = nothing();
  let lastReport = -Infinity;
  let timer: TimerHandle | null = null;
  let stopped = false;

  const schedule = (): void => {
    if (timer !== null || stopped) return;
    const wait = Math.max(0, lastReport + interval - clock.now());
    timer = clock.setTimeout(fire, wait);
  };

  const report = async (): Promise<void> => {
    timer = null;
    if (pending.ttl + pending.overflow === 0) return;
    const payload: DroppedPayload = pending;
    pending = nothing();
    lastReport = clock.now();
    logger.warn(payload, 'outbox dropped events');
    try {
      await outbox.append(OUTBOX_DROPPED_EVENT, payload);
    } catch (err) {
      const e = toPerchError(err);
      logger.error({ code: e.code, err: e.message, ...payload }, 'could not record outbox.dropped; tried again later');
      pending = add(payload, pending);
      schedule();
    }
  };
  function fire(): void {
    void report();
  }

  const unsubscribe = outbox.onDrop((drop) => {
    pending = add(pending, drop);
    schedule();
  });

  return {
    async stop() {
      stopped = true;
      unsubscribe();
      if (timer !== null) clock.clearTimeout(timer);
      await report();
    },
  };
}
