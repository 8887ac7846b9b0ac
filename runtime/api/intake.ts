// Control plane first (docs/reliability.md): health, readiness, metrics and status must answer
// within milliseconds whatever the inference load, and they share one event loop with it. Under
// an infer flood far past capacity (200 pipelining HTTP and 100 WebSocket clients) every turn of
// the loop read, parsed, queued or refused hundreds of requests: turns took 0.3-2 s, so did the
// health checks, and clients that were refused sent again at once, so refusing kept the loop as
// busy as serving. The intake bounds how much inference input one turn takes in:
//
// - While the loop lags (a turn took longer than server.maxEventLoopDelayMs and the loop is
//   busy with its own work), a connection that brings inference work stops being read (parked):
//   its client waits under TCP flow control, at no cost to Perch. Parked connections are read
//   again a few per tick once turns are short, and after at most MAX_LAG_PARK_MS whatever.
// - Within one turn as well: the lag above is known only once a turn has ended, and one turn of
//   the poll phase reads every connection that has input (libuv reads up to 32 chunks per socket
//   per turn): under 300 WebSocket clients that never read, single turns took 2-7 s, each one
//   reading and refusing frames of every connection in turn. Once the current turn has run
//   TURN_INTAKE_MS (or server.maxEventLoopDelayMs if shorter) past the sampler's due time, every
//   further connection that brings inference work in it is parked the same way (the rest of
//   what it already read is held, not handled), so a turn takes in about that much inference
//   input and no more.
// - A connection whose request was refused for load (queue full, budget spent) is parked too,
//   for REFUSAL_PARK_MS, doubled for every park in a row that a refusal started (and longer while
//   the loop lags): a client that retries at once costs one refusal per park, not one per round
//   trip. Refusals that find the connection already parked (requests it had sent before, now
//   answered) start no park and double nothing: counted per refusal, a WebSocket client with 16
//   requests out reached the longest park at its first full queue while an HTTP client with 4
//   out did not, and the flood's 100 WebSocket clients got almost no answers in 4 of 8 runs
//   (docs/reliability.md).
//
// Connections that only ask for health, readiness, metrics or status are never parked.
import { performance, type EventLoopUtilization } from 'node:perf_hooks';

/** A connection the intake can stop reading from and read again. */
export interface Parkable {
  pause(): void;
  resume(): void;
  /** True once the connection is gone: it is dropped from the parked list. */
  readonly closed: boolean;
}

export interface IntakeOptions {
  /** A loop turn longer than this counts as lag (server.maxEventLoopDelayMs). */
  maxLagMs: number;
}

/** How often the loop's lag is sampled while inference traffic comes in. */
const SAMPLE_MS = 10;
/** Parked connections read again per sample: a burst of them is let in gradually. */
const RELEASE_PER_SAMPLE = 4;
/**
 * Inference input one turn takes in, in ms past the sampler's due time, before later connections
 * of that turn are parked. A health check waits for the rest of the turn it arrives in: what the
 * intake let in, then what follows it in the same turn (answers, batches, collections; 10-30 ms
 * in the campaign's profiles). With maxEventLoopDelayMs (30) here, turns of the never-reading
 * WebSocket attack ran 40-50 ms of Perch's own CPU back to back and health p99 on the main port
 * stayed at 70 ms on a quiet machine (docs/reliability.md).
 */
export const TURN_INTAKE_MS = 15;
/** A connection parked for lag is read again after this long even if the loop still lags. */
export const MAX_LAG_PARK_MS = 1000;
/** The first park after a refusal for load; doubled per refusal park in a row, up to MAX_REFUSAL_PARK_MS. */
export const REFUSAL_PARK_MS = 200;
export const MAX_REFUSAL_PARK_MS = 3000;
/** A refusal this long after the last one starts the doubling again. */
const STRIKES_FORGOTTEN_MS = 5000;
/** The loop must also be this busy with its own work: a lag from a machine that is busy elsewhere parks nobody. */
const BUSY_UTILIZATION = 0.8;
/** Sampling stops this long after the last inference request, when nothing is parked. */
const IDLE_STOP_MS = 1000;

interface Parked {
  conn: Parkable;
  /** Not read again before this (a refusal's park). */
  notBefore: number;
  /** Read again at this time whatever the lag. */
  deadline: number;
}

interface Strikes {
  count: number;
  last: number;
}

export class Intake {
  private lag = 0;
  private utilization = 0;
  private elu: EventLoopUtilization | null = null;
  private lastSample = 0;
  private timer: NodeJS.Timeout | null = null;
  private activeUntil = 0;
  private readonly parked: Parked[] = [];
  private readonly parkedSet = new Set<Parkable>();
  private readonly strikes = new WeakMap<Parkable, Strikes>();
  private parksTotal = 0;

  constructor(private readonly opts: IntakeOptions) {}

  /** The last loop turn's lag in ms (0 while no inference traffic comes in). */
  get lagMs(): number {
    return this.lag;
  }

  /** True while inference input is held back. */
  get lagging(): boolean {
    return this.lag > this.opts.maxLagMs && this.utilization >= BUSY_UTILIZATION;
  }

  /** Connections parked now, and since start. */
  get parkedCount(): number {
    return this.parked.length;
  }

  get parkedTotal(): number {
    return this.parksTotal;
  }

  /** Refusal parks of `conn` in a row (0 when it has none, or they were forgotten). */
  strikesOf(conn: Parkable): number {
    const s = this.strikes.get(conn);
    return s && performance.now() - s.last < STRIKES_FORGOTTEN_MS ? s.count : 0;
  }

  /** A connection brings inference work: parked while the loop lags, or while this turn already runs long. */
  pace(conn: Parkable): void {
    const now = performance.now();
    this.activeUntil = now + IDLE_STOP_MS;
    this.start(now);
    if (this.lagging || this.turnRunsLong(now)) this.park(conn, now, now + MAX_LAG_PARK_MS);
  }

  /**
   * The sampler (a timer) runs once per turn at most: when it is this late, the current turn
   * has taken in inference work for TURN_INTAKE_MS already (up to SAMPLE_MS more: the loop may
   * have waited for input after the sample). Whether the machine or Perch made it long cannot be
   * told inside the turn; a turn that long delays health either way.
   */
  private turnRunsLong(now: number): boolean {
    return now - this.lastSample > SAMPLE_MS + Math.min(TURN_INTAKE_MS, this.opts.maxLagMs);
  }

  /**
   * A request of `conn` was refused for load: the connection is not read for a while. One that
   * is parked already (its earlier requests being answered) is left as it is.
   */
  refused(conn: Parkable): void {
    const now = performance.now();
    this.activeUntil = now + IDLE_STOP_MS;
    this.start(now);
    if (conn.closed || this.parkedSet.has(conn)) return;
    const s = this.strikes.get(conn);
    const count = s && now - s.last < STRIKES_FORGOTTEN_MS ? s.count + 1 : 1;
    this.strikes.set(conn, { count, last: now });
    const wait = Math.min(MAX_REFUSAL_PARK_MS, REFUSAL_PARK_MS * 2 ** (count - 1));
    // Read again after `wait` once the loop does not lag, after at most MAX_LAG_PARK_MS more whatever.
    this.park(conn, now + wait, now + wait + MAX_LAG_PARK_MS);
  }

  /** Stops sampling and reads every parked connection again (shutdown). */
  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    for (const p of this.parked.splice(0)) this.release(p);
  }

  private park(conn: Parkable, notBefore: number, deadline: number): void {
    if (conn.closed || this.parkedSet.has(conn)) return;
    this.parkedSet.add(conn);
    this.parked.push({ conn, notBefore, deadline });
    this.parksTotal++;
    conn.pause();
  }

  private release(p: Parked): void {
    this.parkedSet.delete(p.conn);
    if (!p.conn.closed) p.conn.resume();
  }

  private start(now: number): void {
    if (this.timer) return;
    this.lastSample = now;
    this.elu = performance.eventLoopUtilization();
    this.timer = setInterval(() => this.sample(), SAMPLE_MS);
    this.timer.unref();
  }

  private sample(): void {
    const now = performance.now();
    this.lag = Math.max(0, now - this.lastSample - SAMPLE_MS);
    this.lastSample = now;
    const elu = performance.eventLoopUtilization();
    // Utilization over the last few samples: one sample's is all busy or all idle.
    this.utilization = 0.7 * this.utilization + 0.3 * performance.eventLoopUtilization(elu, this.elu ?? elu).utilization;
    this.elu = elu;
    const lagging = this.lagging;
    // While the loop lags only connections past their deadline go, one per sample.
    const allowed = lagging ? 1 : RELEASE_PER_SAMPLE;
    let released = 0;
    for (let i = 0; i < this.parked.length && released < allowed; ) {
      const p = this.parked[i] as Parked;
      if (p.conn.closed) {
        this.parkedSet.delete(p.conn);
        this.parked.splice(i, 1);
        continue;
      }
      if (now >= p.deadline || (!lagging && now >= p.notBefore)) {
        this.parked.splice(i, 1);
        this.release(p);
        released++;
        continue;
      }
      i++;
    }
    if (this.parked.length === 0 && now > this.activeUntil && this.timer) {
      clearInterval(this.timer);
      this.timer = null;
      this.lag = 0;
      this.utilization = 0;
    }
  }
}
