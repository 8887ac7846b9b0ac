// Turns retention drops into `outbox.dropped` events, coalesced. Reporting each drop at once
// would loop when the backlog sits at its byte budget: the report event itself pushes the
// oldest event out, which is another drop to report. So drops are summed and reported at most
// once per interval (the first one right away), which bounds that loop to one event per interval.
import { systemClock, type Clock, type TimerHandle } from '../base/clock.js';
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

/** Payload of an `outbox.dropped` event. */
export interface DroppedPayload {
  ttl: number;
  overflow: number;
  bytes: number;
}

export function startDropReporter(outbox: Outbox, opts: DropReporterOptions = {}): DropReporter {
  const clock = opts.clock ?? systemClock;
  const logger = opts.logger ?? silentLogger();
  const interval = opts.minIntervalMs ?? 60_000;
  let pending: DropCounts = { ttl: 0, overflow: 0, bytes: 0 };
  let lastReport = -Infinity;
  let timer: TimerHandle | null = null;

  const report = async (): Promise<void> => {
    timer = null;
    if (pending.ttl + pending.overflow === 0) return;
    const payload: DroppedPayload = pending;
    pending = { ttl: 0, overflow: 0, bytes: 0 };
    lastReport = clock.now();
    logger.warn(payload, 'outbox dropped events');
    try {
      await outbox.append(OUTBOX_DROPPED_EVENT, payload);
    } catch (err) {
      logger.error({ err, ...payload }, 'could not record outbox.dropped');
    }
  };
  const fire = (): void => {
    void report();
  };

  const unsubscribe = outbox.onDrop((drop) => {
    pending = { ttl: pending.ttl + drop.ttl, overflow: pending.overflow + drop.overflow, bytes: pending.bytes + drop.bytes };
    if (timer !== null) return;
    const wait = Math.max(0, lastReport + interval - clock.now());
    timer = clock.setTimeout(fire, wait);
  });

  return {
    async stop() {
      unsubscribe();
      if (timer !== null) clock.clearTimeout(timer);
      await report();
    },
  };
}
