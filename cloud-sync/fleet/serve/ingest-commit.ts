// Group commit of what serve ingests (docs/fleet.md "Group commit"): the writes (event batches,
// statuses, reported states) that arrive while a store transaction is in flight are stored
// together in the next one, so one commit (one fsync) covers many MQTT messages. The queue is
// the runtime's (runtime/store/group-commit.ts, the outbox's too): each write's promise settles
// only once the transaction holding it committed, so its PUBACK and its device ack go out after
// that, never before, and nothing acknowledged can be lost. This file adds what serve needs on
// top: a group the store refuses is stored write by write (one bad write must not take the
// others down), the counters, and one log line per commit.
//
// How many writes a group holds is bounded by serve itself, not by a limit here: MQTT.js hands a
// connection's next message over only after the previous one's handleMessage callback
// (node_modules/mqtt/build/lib/handlers/publish.js), so each ingest connection has at most one
// write waiting (daemon.ts opens --ingest-connections of them).
import type { Logger } from '../../../runtime/base/log.js';
import { GroupCommit } from '../../../runtime/store/group-commit.js';
import type { FleetStore, IngestWrite } from '../store/fleet-store.js';
import type { ServeStats } from './stats.js';

/** Resolves with the events a write stored (new ones; 0 for statuses and reported states). */
export type IngestCommit = GroupCommit<IngestWrite, number>;

/**
 * @param collect wait one turn of the event loop before a commit so that the other connections'
 *   messages read in that turn join it. false with one connection (--unshared): nothing could
 *   join, and the extra turn per message slowed a flooded serve's acks (more re-sends).
 */
export function ingestCommit(store: Pick<FleetStore, 'ingest'>, now: () => number, stats: ServeStats, log: Logger, collect = true): IngestCommit {
  const commit = async (writes: readonly IngestWrite[]): Promise<number[]> => {
    const stored = await store.ingest(writes, now());
    stats.commits++;
    stats.groupedWrites += writes.length;
    if (writes.length > stats.largestGroup) stats.largestGroup = writes.length;
    logEvents(log, writes, stored);
    return stored;
  };
  return new GroupCommit<IngestWrite, number>(commit, (err) => (err instanceof Error ? err : new Error(String(err))), {
    collect: collect ? 'turn' : 'now',
    retryAlone: (err, writes) => log.warn({ err: (err as Error).message, writes }, 'group commit failed; storing its writes one by one'),
  });
}

/** One info line per commit with events (the sum of its batches); each batch at debug. */
function logEvents(log: Logger, writes: readonly IngestWrite[], stored: number[]): void {
  let batches = 0;
  let events = 0;
  let storedSum = 0;
  writes.forEach((w, i) => {
    if (w.kind !== 'events') return;
    batches++;
    events += w.events.length;
    storedSum += stored[i] ?? 0;
    if (log.isLevelEnabled('debug')) {
      const seqs = w.events.map((e) => e.seq);
      log.debug({ deviceId: w.deviceId, stored: stored[i] ?? 0, firstSeq: Math.min(...seqs), lastSeq: Math.max(...seqs) }, 'event batch');
    }
  });
  if (batches > 0) log.info({ batches, stored: storedSum, duplicates: events - storedSum, writes: writes.length }, 'events');
}
