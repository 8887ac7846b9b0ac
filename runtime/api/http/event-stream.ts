// One Server-Sent Events stream at /v1/events (docs/api.md "Server-Sent Events"): the topics of
// the WebSocket `subscribe` op, from the same source (api/topics.ts). For topic `events` the SSE
// id is the outbox seq, and the stream is driven by a cursor: it resumes after `Last-Event-ID`
// by reading the outbox (replay), then goes live; live events that come during a replay are kept
// (bounded) and the seam is closed by seq, so nothing is sent twice and nothing is skipped.
//
// Bounded like any client (docs/reliability.md): every byte written and not yet flushed is held
// of the client budget, as unread answers. Past maxBufferedBytes (64 KiB while unread answers
// hold more than their share of the budget) the stream stops writing: `events` fall behind and
// are read again from the outbox once the reader catches up, the other topics (state snapshots)
// skip what came meanwhile; a reader that stays over the limit for slowReaderTimeoutMs is cut off
// and everything it held given back.
import type { ServerResponse } from 'node:http';
import type { Clock, TimerHandle } from '../../base/clock.js';
import type { Logger } from '../../base/log.js';
import type { OutboxEvent } from '../../store/outbox.js';
import type { ClientBudget, Hold } from '../client-budget.js';
import type { Topic, TopicSource } from '../topics.js';

export interface EventStreamDeps {
  subscribe: TopicSource;
  /** Stored events after a seq (outbox.readAfter). */
  readAfter: (after: number, limit: number) => Promise<OutboxEvent[]>;
  /** The highest seq assigned so far: where a stream without Last-Event-ID starts. */
  lastSeq: () => number;
  budget: ClientBudget;
  clock: Clock;
  log: Logger;
  heartbeatMs: number;
  maxBufferedBytes: number;
  slowReaderTimeoutMs: number;
}

interface LiveEvent { eventId: string; seq: number; type: string; payload: unknown }

/** Events read from the outbox per query while replaying. */
const PAGE = 256;
/** Live events kept while a replay runs; past it they are read from the outbox after the replay. */
const MAX_KEPT = 1024;
/**
 * While the budget is spent, or unread answers hold more than their share of it
 * (ClientBudget.unreadFull), this much unflushed already counts as a slow reader.
 */
const SPENT_BUFFER_LIMIT = 64 * 1024;
/** How long a client waits before reconnecting (SSE `retry:`). */
const RETRY_MS = 2000;

export class EventStream {
  private readonly hold: Hold;
  private readonly offs: Array<() => void> = [];
  private closed = false;
  private heartbeat: TimerHandle | null = null;
  private slowTimer: TimerHandle | null = null;
  /** Last `events` seq written. */
  private cursor: number;
  /** True while events are read from the outbox (replay, or catching up after falling behind). */
  private pumping = false;
  /** True when live events were not written (over the limit): read them from the outbox later. */
  private behind = false;
  private kept: LiveEvent[] = [];
  private keptOverflow = false;
  private drainWaiters: Array<() => void> = [];

  constructor(
    private readonly res: ServerResponse,
    private readonly deps: EventStreamDeps,
    topics: readonly Topic[],
    lastEventId: number | null,
  ) {
    this.hold = deps.budget.hold();
    this.cursor = lastEventId ?? deps.lastSeq();
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      // Proxies (nginx) would otherwise hold the stream back.
      'x-accel-buffering': 'no',
    });
    res.once('close', () => this.close());
    this.write(`retry: ${RETRY_MS}\n: perch ${topics.join(',')}\n\n`);
    for (const topic of topics) {
      if (topic === 'events') this.offs.push(deps.subscribe('events', (e) => this.onLive(e as LiveEvent)));
      else this.offs.push(deps.subscribe(topic, (data) => this.onState(topic, data)));
    }
    this.beat();
    if (topics.includes('events') && lastEventId !== null) void this.pump();
  }

  /** Ends the stream (shutdown); the client reconnects to the next process with its last id. */
  end(): void {
    if (this.closed) return;
    this.res.end();
    this.close();
  }

  get isClosed(): boolean {
    return this.closed;
  }

  private onState(topic: Topic, data: unknown): void {
    if (this.over()) {
      this.watchSlowReader();
      return; // a snapshot: the next one will do
    }
    this.write(`event: ${topic}\ndata: ${JSON.stringify(data)}\n\n`);
  }

  private onLive(e: LiveEvent): void {
    if (this.pumping) {
      if (this.kept.length < MAX_KEPT) this.kept.push(e);
      else this.keptOverflow = true;
      return;
    }
    if (e.seq <= this.cursor) return;
    if (this.behind || this.over()) {
      this.behind = true;
      this.watchSlowReader();
      return;
    }
    this.writeEvent(e);
  }

  private writeEvent(e: LiveEvent | OutboxEvent): void {
    const payload = 'payloadJson' in e ? e.payloadJson : JSON.stringify(e.payload ?? null);
    this.write(`id: ${e.seq}\nevent: events\ndata: {"eventId":${JSON.stringify(e.eventId)},"seq":${e.seq},"type":${JSON.stringify(e.type)},"payload":${payload}}\n\n`);
    this.cursor = e.seq;
  }

  /** Reads the outbox after the cursor until caught up, then writes the live events kept meanwhile. */
  private async pump(): Promise<void> {
    this.pumping = true;
    this.behind = false;
    try {
      for (;;) {
        this.kept = [];
        this.keptOverflow = false;
        for (;;) {
          const page = await this.deps.readAfter(this.cursor, PAGE);
          if (this.closed) return;
          for (const e of page) this.writeEvent(e);
          if (this.over()) await this.drained();
          if (this.closed) return;
          if (page.length < PAGE) break;
        }
        // Caught up with the store. Kept live events past the cursor follow (their seqs are
        // higher than anything read, as they were committed after the last read began).
        if (this.keptOverflow) continue; // some were not kept: read them from the store
        for (const e of this.kept) if (e.seq > this.cursor) this.writeEvent(e);
        this.kept = [];
        return;
      }
    } catch (err) {
      this.deps.log.warn({ err }, 'event stream replay failed: closed');
      this.res.destroy();
    } finally {
      this.pumping = false;
    }
  }

  private write(text: string): void {
    if (this.closed) return;
    const size = Buffer.byteLength(text);
    // Unread answers, as a WebSocket's (client-budget.ts UNREAD_SHARE): never-reading streams
    // may hold a quarter of the budget before those past 64 KiB stop and are cut off.
    this.hold.addUnread(size);
    this.res.write(text, () => {
      this.hold.subUnread(size);
      this.flowed();
    });
    this.watchSlowReader();
  }

  private over(): boolean {
    const held = this.hold.heldBytes;
    return held > this.deps.maxBufferedBytes || (held > SPENT_BUFFER_LIMIT && this.deps.budget.unreadFull);
  }

  /** Bytes reached the kernel: wake a waiting replay, catch up what was skipped. */
  private flowed(): void {
    this.watchSlowReader();
    if (this.closed || this.over()) return;
    for (const w of this.drainWaiters.splice(0)) w();
    if (this.behind && !this.pumping) void this.pump();
  }

  private drained(): Promise<void> {
    return new Promise((resolve) => this.drainWaiters.push(resolve));
  }

  /**
   * Runs the slow-reader clock while over the limit. Checked where the stream writes or skips a
   * write (a topic's notification, the heartbeat), not only where its own write took it over: a
   * stream under its own limit is over once others have filled the budget, and a reader that
   * takes nothing never calls back (200 such readers held the whole budget, none cut off).
   */
  private watchSlowReader(): void {
    if (!this.over() || this.closed) {
      if (this.slowTimer) this.deps.clock.clearTimeout(this.slowTimer);
      this.slowTimer = null;
      return;
    }
    if (this.slowTimer) return;
    this.slowTimer = this.deps.clock.setTimeout(() => {
      this.slowTimer = null;
      if (this.closed || !this.over()) return;
      this.deps.log.warn({ held: this.hold.heldBytes }, 'event stream client does not read: cut off');
      this.res.destroy();
      this.close();
    }, this.deps.slowReaderTimeoutMs);
  }

  private beat(): void {
    this.heartbeat = this.deps.clock.setTimeout(() => {
      if (this.closed) return;
      if (!this.over()) this.write(':\n\n');
      else this.watchSlowReader();
      this.beat();
    }, this.deps.heartbeatMs);
  }

  private close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const off of this.offs.splice(0)) off();
    if (this.heartbeat) this.deps.clock.clearTimeout(this.heartbeat);
    if (this.slowTimer) this.deps.clock.clearTimeout(this.slowTimer);
    this.kept = [];
    for (const w of this.drainWaiters.splice(0)) w();
    this.hold.release();
  }
}
