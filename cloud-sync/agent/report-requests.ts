// reportState commands share state/reported publishes (docs/protocol.md section 5). Each one
// built the whole reported document (every model, the live config, the outbox's count from
// SQLite) and published it retained: a peer with publish rights sending thousands a second had
// the device do that thousands of times a second. Now at most one publish per
// REPORT_STATE_INTERVAL_MS comes from commands: one asked for while a publish is on its way, or
// within the interval after the last one started, waits for the next, and every command asked
// for meanwhile shares it. The document is built when that publish starts, so it is never older
// than any command it answers. Each command is still answered (command.succeeded) once the
// publish it shares has gone out; `coalesced: true` in the result of those that joined one
// another command started.
import type { Clock, TimerHandle } from '../../runtime/base/clock.js';
import { PerchError } from '../../runtime/base/errors.js';

/** Fewest milliseconds between two publishes asked for by reportState commands. */
export const REPORT_STATE_INTERVAL_MS = 1000;

export interface ReportAnswer {
  coalesced?: true;
}

interface Waiting {
  done: Promise<void>;
  /** Settles `done` with a failure (the agent stops before it started). */
  abandon(err: Error): void;
}

export class ReportRequests {
  private lastStart = -Infinity;
  private running: Promise<void> | null = null;
  private waiting: Waiting | null = null;
  private timer: TimerHandle | null = null;

  constructor(
    private readonly publish: () => Promise<void>,
    private readonly clock: Clock,
    private readonly intervalMs = REPORT_STATE_INTERVAL_MS,
  ) {}

  /** Resolves once a publish that started after this call has gone out. */
  async request(): Promise<ReportAnswer> {
    if (this.waiting !== null) {
      await this.waiting.done;
      return { coalesced: true };
    }
    if (this.running === null && this.clock.now() - this.lastStart >= this.intervalMs) {
      await this.start();
      return {};
    }
    await this.next().done;
    return {};
  }

  /** The agent stops: a publish still waiting for its turn does not happen; its commands fail. */
  stop(): void {
    if (this.timer !== null) this.clock.clearTimeout(this.timer);
    this.timer = null;
    const w = this.waiting;
    this.waiting = null;
    w?.abandon(new PerchError('PERCH_ERR_SHUTTING_DOWN', 'the cloud agent stopped before state/reported was published again'));
  }

  private start(): Promise<void> {
    this.lastStart = this.clock.now();
    const p = this.publish();
    const running = p.then(() => undefined, () => undefined).finally(() => {
      if (this.running === running) this.running = null;
    });
    this.running = running;
    return p;
  }

  /** The next publish (this.waiting until it starts): after the one on its way, and an interval after the last start. */
  private next(): Waiting {
    let cancelled = false;
    let settle: { resolve: () => void; reject: (err: Error) => void } = { resolve: () => undefined, reject: () => undefined };
    const done = new Promise<void>((resolve, reject) => (settle = { resolve, reject }));
    const go = (): void => {
      if (cancelled) return;
      this.timer = null;
      this.waiting = null; // commands from now on wait for the one after this
      this.start().then(settle.resolve, settle.reject);
    };
    const afterRunning = (): void => {
      if (cancelled) return;
      const wait = this.lastStart + this.intervalMs - this.clock.now();
      if (wait <= 0) go();
      else this.timer = this.clock.setTimeout(go, wait);
    };
    const waiting: Waiting = {
      done,
      abandon: (err) => {
        cancelled = true;
        settle.reject(err);
      },
    };
    // Set before it can start: the clock may have moved past the interval since request() looked.
    this.waiting = waiting;
    if (this.running !== null) void this.running.then(afterRunning);
    else afterRunning();
    return waiting;
  }
}
