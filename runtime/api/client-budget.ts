// One process-wide budget for the bytes Perch holds on behalf of clients (DESIGN house style 14;
// docs/reliability.md): request bodies being read, frames being handled, answers not yet written.
// Per-connection limits alone did not bound the process: 300 WebSocket clients that never read
// each held their 8 MiB of answers (2.4 GB). Everything a client makes Perch hold is taken from
// here through a Hold, which gives it all back at once when the request or connection ends, so
// nothing a closed connection held stays counted.
import { PerchError } from '../base/errors.js';

/**
 * The share of the budget that answers not yet handed to the kernel may take before the clients
 * that leave theirs unread stop being read (docs/reliability.md "Clients that do not read"). A
 * client that reads its answers holds next to nothing here (the kernel's socket buffers take them
 * as they come); 300 WebSocket clients that never read filled the whole budget with answers to
 * work admitted before they were paused (107 MB of 134) and peaked at 395-438 MB of RSS.
 */
export const UNREAD_SHARE = 4;

export class ClientBudget {
  private held = 0;
  private peak = 0;
  private recentPeak = 0;
  private refusals = 0;
  private unread = 0;
  private discards = 0;
  private taken = 0;
  /** Answers not yet handed to the kernel may hold this much before their readers are held back. */
  readonly unreadLimit: number;

  constructor(readonly limit: number) {
    this.unreadLimit = Math.floor(limit / UNREAD_SHARE);
  }

  /** Bytes held for clients now. */
  get heldBytes(): number {
    return this.held;
  }

  get peakBytes(): number {
    return this.peak;
  }

  /** The most held since the last call (idle-collector.ts watches for bursts with it). */
  takeRecentPeak(): number {
    const p = this.recentPeak;
    this.recentPeak = this.held;
    return p;
  }

  /**
   * `n` bytes read from a client and let go without being held: a refused frame, the body a
   * lingering connection sent after its answer (http/lingering-close.ts). Never held, but garbage
   * in V8's ArrayBuffers all the same until it collects: idle-collector.ts counts them as a burst.
   */
  discarded(n: number): void {
    this.discards += n;
  }

  /** The bytes discarded since the last call (idle-collector.ts). */
  takeDiscarded(): number {
    const d = this.discards;
    this.discards = 0;
    return d;
  }

  /**
   * The bytes taken since the last call, however briefly held: the traffic clients made Perch
   * hold. idle-collector.ts counts it as a burst too: steady streams never hold much at once, yet
   * leave V8's young generation grown and glibc's heap full after they stop.
   */
  takeTaken(): number {
    const t = this.taken;
    this.taken = 0;
    return t;
  }

  /** Requests refused because the budget was spent, since start. */
  get refusedCount(): number {
    return this.refusals;
  }

  /** True once nothing more may be admitted: new work is refused until bytes are given back. */
  get spent(): boolean {
    return this.held >= this.limit;
  }

  /** Answer bytes held now that are not yet handed to the kernel (part of heldBytes). */
  get unreadBytes(): number {
    return this.unread;
  }

  /**
   * True while answers not handed to the kernel hold more than their share (unreadLimit), or the
   * budget is spent: a connection with more than a little unread is then not read any more.
   */
  get unreadFull(): boolean {
    return this.unread > this.unreadLimit || this.held >= this.limit;
  }

  /** A new, empty hold for one request or connection. */
  hold(): Hold {
    return new Hold(this);
  }

  /** The refusal for a request that does not fit; counted. */
  refusal(what: string, bytes: number): PerchError {
    this.refusals++;
    return new PerchError('PERCH_ERR_OVERLOADED', `${what}: ${bytes} more bytes do not fit the ${this.limit} bytes Perch holds for all clients (server.maxClientBytes); retry later`);
  }

  /** @internal Hold's side of the ledger. */
  take(n: number, force: boolean): boolean {
    if (!force && this.held + n > this.limit) return false;
    this.held += n;
    this.taken += n;
    if (this.held > this.peak) this.peak = this.held;
    if (this.held > this.recentPeak) this.recentPeak = this.held;
    return true;
  }

  /** @internal */
  give(n: number): void {
    this.held -= n;
  }

  /** @internal Hold's side of the unread answers' count (within held). */
  unreadBy(n: number): void {
    this.unread += n;
  }
}

/**
 * What one request or connection holds of the budget; release() gives back all of it, once, and
 * for good: a released hold takes nothing more, so work that finishes after its client left
 * cannot put bytes back that nothing would give back again.
 */
export class Hold {
  private bytes = 0;
  /** Of `bytes`, answers not yet handed to the kernel (addUnread). */
  private unread = 0;
  private isReleased = false;
  private onReleased: Set<() => void> | null = null;

  constructor(private readonly budget: ClientBudget) {}

  get heldBytes(): number {
    return this.bytes;
  }

  get released(): boolean {
    return this.isReleased;
  }

  /**
   * Calls `fn` once when this hold is released: what still holds the request's bytes elsewhere
   * (a body waiting for the JSON parse thread) lets them go with it. Returns a function that forgets `fn`.
   */
  onRelease(fn: () => void): () => void {
    if (this.isReleased) {
      fn();
      return () => {};
    }
    (this.onReleased ??= new Set()).add(fn);
    return () => this.onReleased?.delete(fn);
  }

  /** Takes `n` bytes if they fit; false (nothing taken) if the budget would be passed. */
  tryAdd(n: number): boolean {
    if (this.isReleased) return false;
    if (!this.budget.take(n, false)) return false;
    this.bytes += n;
    return true;
  }

  /**
   * Takes `n` bytes even over the limit: for answers to work already admitted (refusing them
   * would waste the work done). While over, new work is refused, so this overshoots by at most
   * the answers of what was admitted.
   */
  add(n: number): void {
    if (this.isReleased) return;
    this.budget.take(n, true);
    this.bytes += n;
  }

  /** Gives back `n` of the bytes this hold has. */
  sub(n: number): void {
    const k = Math.min(n, this.bytes);
    this.bytes -= k;
    this.budget.give(k);
  }

  /** An answer of `n` bytes waiting to be handed to the kernel: taken as add() does, and counted as unread. */
  addUnread(n: number): void {
    if (this.isReleased) return;
    this.add(n);
    this.unread += n;
    this.budget.unreadBy(n);
  }

  /** `n` bytes of answers were handed to the kernel: given back. */
  subUnread(n: number): void {
    const k = Math.min(n, this.unread);
    this.unread -= k;
    this.budget.unreadBy(-k);
    this.sub(k);
  }

  release(): void {
    if (this.isReleased) return;
    this.isReleased = true;
    this.budget.give(this.bytes);
    this.budget.unreadBy(-this.unread);
    this.bytes = 0;
    this.unread = 0;
    const fns = this.onReleased;
    this.onReleased = null;
    if (fns) for (const fn of fns) fn();
  }
}

/**
 * What parsed JSON holds, per byte of JSON text: `[0,0,...]` becomes an array of 8-byte numbers
 * (4x), long random floats about 2.3x (the campaign's 30 MB body took 68 MB). A JSON body or frame
 * is charged this many times its size before it is parsed, until it is answered.
 */
export const JSON_EXPANSION = 4;

/**
 * What parsing one JSON body takes at its peak, per byte of text: measured for 30 MB of
 * `0,0,...` (docs/reliability.md), the text as a string, the array JSON.parse builds while it
 * grows and the typed array made from it took 8 times the body beside the body. Parsing itself is
 * synchronous, but what it leaves (the string, the array of numbers) stays until V8 collects, and
 * V8 collects late: with HTTP bodies charged 4x, two or three 12 MB bodies were admitted at once
 * and RSS peaked at 500-640 MB. An HTTP JSON body is charged this much until it is answered, from
 * its headers when its length is declared (routes.ts), so the budget admits large ones one at a
 * time and refuses the others before their bodies are read (429, their connections parked), and
 * a body whose parse could never fit gets 413. Large arrays of numbers no longer go through a
 * string and a JS array (tensor/json-number-run.ts), but bodies of strings or booleans still do.
 */
export const JSON_PARSE_PEAK = 9;

/** 413 for `jsonBytes` of JSON whose parse would take more than the whole budget (from the headers, or once read). */
export function refuseJsonThatCannotFit(budget: ClientBudget, jsonBytes: number): void {
  if (jsonBytes * JSON_PARSE_PEAK > budget.limit) {
    throw new PerchError('PERCH_ERR_REQUEST_TOO_LARGE', `${jsonBytes} bytes of JSON take about ${jsonBytes * JSON_PARSE_PEAK} bytes to parse (they expand), more than server.maxClientBytes (${budget.limit}); send large tensors as binary data`);
  }
}

/** Takes the parse cost of `jsonBytes` of JSON text (JSON_PARSE_PEAK): 413 if it could never fit, 429 if not now. */
export function takeJsonCost(budget: ClientBudget, hold: Hold, jsonBytes: number): void {
  const cost = jsonBytes * (JSON_PARSE_PEAK - 1); // the text itself is already held
  refuseJsonThatCannotFit(budget, jsonBytes);
  if (!hold.tryAdd(cost)) throw budget.refusal('parsing a JSON body', cost);
}
