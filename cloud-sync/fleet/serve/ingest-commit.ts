// Group commit (docs/fleet.md "Group commit"): the writes serve ingests (event batches, statuses,
// reported states) that arrive while a store transaction is in flight are stored together in the
// next one, so one commit (one fsync) covers many MQTT messages. Each write's promise settles
// only once the transaction holding it committed: its PUBACK and its device ack go out after
// that, never before, so nothing acknowledged can be lost.
//
// How many writes a group holds is bounded by serve itself, not by a limit here: MQTT.js hands a
// connection's next message over only after the previous one's handleMessage callback
// (node_modules/mqtt/build/lib/handlers/publish.js), so each ingest connection has at most one
// write waiting (daemon.ts opens --ingest-connections of them).
import type { Logger } from '../../../runtime/base/log.js';
import type { FleetStore, IngestWrite } from '../store/fleet-store.js';
import type { ServeStats } from './stats.js';

interface Pending {
  write: IngestWrite;
  resolve: (stored: number) => void;
  reject: (err: unknown) => void;
}

export class GroupCommit {
  private queue: Pending[] = [];
  private draining = false;

  constructor(
    private readonly store: Pick<FleetStore, 'ingest'>,
    private readonly now: () => number,
    private readonly stats: ServeStats,
    private readonly log: Logger,
    /**
     * Wait one turn of the event loop before a commit so that the other connections' messages
     * read in that turn join it. false with one connection (--unshared): nothing could join,
     * and the extra turn per message slowed a flooded serve's acks (more re-sends).
     */
    private readonly collect = true,
  ) {}

  /** Stores `write` in the next group; resolves with the events it stored once that group committed. */
  submit(write: IngestWrite): Promise<number> {
    return new Promise<number>((resolve, reject) => {
      this.queue.push({ write, resolve, reject });
      if (this.draining) return;
      this.draining = true;
      // One turn later, not at once: the other connections' messages read in the same turn join.
      if (this.collect) setImmediate(() => void this.drain());
      else queueMicrotask(() => void this.drain());
    });
  }

  private async drain(): Promise<void> {
    while (this.queue.length > 0) {
      const group = this.queue;
      this.queue = [];
      // Messages that arrive meanwhile (an async store) queue up for the next round; with
      // better-sqlite3 (synchronous) they wait in the sockets and the next submit starts a drain.
      await this.commit(group);
    }
    this.draining = false;
  }

  private async commit(group: Pending[]): Promise<void> {
    try {
      const stored = await this.store.ingest(group.map((p) => p.write), this.now());
      this.stats.commits++;
      this.stats.groupedWrites += group.length;
      if (group.length > this.stats.largestGroup) this.stats.largestGroup = group.length;
      this.logEvents(group, stored);
      group.forEach((p, i) => p.resolve(stored[i] ?? 0));
    } catch (err) {
      if (group.length === 1) {
        group[0]?.reject(err);
        return;
      }
      // One write the store refuses must not take the others down with it: each alone.
      this.log.warn({ err: (err as Error).message, writes: group.length }, 'group commit failed; storing its writes one by one');
      for (const p of group) await this.commit([p]);
    }
  }

  /** One info line per commit with events (the sum of its batches); each batch at debug. */
  private logEvents(group: Pending[], stored: number[]): void {
    let batches = 0;
    let events = 0;
    let storedSum = 0;
    group.forEach((p, i) => {
      if (p.write.kind !== 'events') return;
      batches++;
      events += p.write.events.length;
      storedSum += stored[i] ?? 0;
      if (this.log.isLevelEnabled('debug')) {
        const seqs = p.write.events.map((e) => e.seq);
        this.log.debug({ deviceId: p.write.deviceId, stored: stored[i] ?? 0, firstSeq: Math.min(...seqs), lastSeq: Math.max(...seqs) }, 'event batch');
      }
    });
    if (batches > 0) this.log.info({ batches, stored: storedSum, duplicates: events - storedSum, writes: group.length }, 'events');
  }
}
