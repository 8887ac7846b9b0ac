// A request waiting in a batcher's queue (batcher.ts), and the client scope it watches while it
// waits: if the client's connection closes, the request leaves the queue instead of running for
// nobody (inference/client-scope.ts).
import type { TimerHandle } from '../base/clock.js';

/** The queue a request waits in: told when the request's client went away. */
export interface QueueOf<T, R> {
  drop(entry: QueuedRequest<T, R>): void;
}

/** Told once when the scope it watches closes (ClientScope.watch). */
export interface ScopeWatcher {
  scopeClosed(): void;
}

/** What the batcher needs of a client's scope (inference/client-scope.ts). */
export interface CloseScope {
  /** `w.scopeClosed()` once when the client goes away (at once if it has). */
  watch(w: ScopeWatcher): void;
  unwatch(w: ScopeWatcher): void;
}

/**
 * A queued request. It watches its client's scope itself (a method, not a closure): a close
 * callback and the function that forgot it were two closures per stream chunk (docs/benchmarks.md,
 * "Stream chunks on the main thread").
 */
export class QueuedRequest<T, R> implements ScopeWatcher {
  timer: TimerHandle | null = null;
  /** The scope it watches while queued. */
  watched: CloseScope | null = null;

  constructor(
    private readonly queue: QueueOf<T, R>,
    readonly items: number,
    readonly groupKey: string,
    public priority: number,
    readonly timeoutMs: number | null,
    readonly bytes: number,
    readonly payload: T,
    readonly enqueuedAt: number,
    readonly resolve: (r: R) => void,
    readonly reject: (e: Error) => void,
  ) {}

  scopeClosed(): void {
    this.watched = null;
    this.queue.drop(this);
  }

  /** It left the queue: its scope is no longer watched. */
  unwatch(): void {
    const scope = this.watched;
    if (scope === null) return;
    this.watched = null;
    scope.unwatch(this);
  }
}
