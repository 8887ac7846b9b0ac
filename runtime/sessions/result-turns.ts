// Session threads' results, settled within a budget per turn of the event loop (docs/reliability.md
// "The main port's p99: waiting for a core").
//
// Node's worker MessagePort callback goes on delivering every message that arrives while it runs,
// and settling a result answers its batch's requests and hands the thread its next batch: a
// thread that runs a batch faster than the main thread answers one has its next result there
// before the callback ends. Under 300 WebSocket clients that never read, one callback settled up
// to 45 `silero-vad` results in a chain (55-157 ms of the main thread's CPU ahead of a health
// probe at p99) and the intake's budget, which paces reading, does not see inside it.
//
// So results are settled at once while the results settled in this turn have taken less than
// SETTLE_TURN_MS; past it, the rest wait for the check phase (setImmediate), where they are
// settled within the same budget again, and whatever is still left waits for the next turn, after
// its poll phase (a health request's read). Settling every result from setImmediate bounded the
// chains too, but the infer flood's turns, short per result, got longer in 6 of 6 pairs: its
// results came on top of the turn's reading rather than inside it (branch h-turns-defer,
// docs/history/reliability-notes.md).
//
// One budget for the process: a turn's chain may hold results of several session threads.
import { performance } from 'node:perf_hooks';

/** Main-thread time a turn spends settling results before the rest wait for the next phase. */
export const SETTLE_TURN_MS = 10;

/** Settlements waiting for the check phase, in the order their results arrived. */
const waiting: Array<() => void> = [];
/** When this turn's first settlement started (-1: none yet since the last check phase). */
let turnStart = -1;
let checkQueued = false;

/**
 * Runs `settle` (a result's settlement: resolving its promise) now, or after those waiting, once
 * this turn's settlements have run SETTLE_TURN_MS. A settlement's answers run in the promise
 * reactions right after it (Node drains microtasks after each message it delivers), so they are
 * counted in the next call's check.
 */
export function settleInTurn(settle: () => void): void {
  if (waiting.length === 0) {
    const now = performance.now();
    if (turnStart < 0) {
      turnStart = now;
      queueCheck();
    }
    if (now - turnStart < SETTLE_TURN_MS) {
      settle();
      return;
    }
  }
  waiting.push(settle);
}

function queueCheck(): void {
  if (checkQueued) return;
  checkQueued = true;
  setImmediate(check);
}

/** The check phase: settlements that waited, within a budget of their own. */
function check(): void {
  checkQueued = false;
  turnStart = performance.now();
  next();
}

/**
 * The next waiting settlement while the budget lasts. Called again as a microtask, so after the
 * promise reactions of the one before (its answers): they count in the check.
 */
function next(): void {
  if (waiting.length === 0) {
    turnStart = -1;
  } else if (performance.now() - turnStart >= SETTLE_TURN_MS) {
    queueCheck(); // queued from the check phase: runs in the next turn, after its poll phase
  } else {
    (waiting.shift() as () => void)();
    queueMicrotask(next);
  }
}
