// The connection a request came on, as the request path sees it (docs/reliability.md). When the
// client goes away its scope closes: work it queued is dropped instead of run for nobody, and
// sequences tied to it end, so a thousand starts from one client do not hold the model's
// sequence slots for the idle timeout after it left.
import type { ScopeWatcher } from '../batching/queued-request.js';

export interface ScopeOptions {
  /** Live sequences this connection may hold at once (server.maxSequencesPerConnection). */
  maxSequences: number;
  /** End this connection's sequences when it closes (server.sequencesEndWithConnection). */
  sequencesEndWithConnection: boolean;
}

export class ClientScope {
  private closed = false;
  /** Who is told when the client goes away (onClose's callbacks are watchers too). */
  private readonly watchers = new Set<ScopeWatcher>();

  constructor(readonly options: ScopeOptions) {}

  get isClosed(): boolean {
    return this.closed;
  }

  /** Calls `fn` once when the client goes away (at once if it has); returns the function that forgets it. */
  onClose(fn: () => void): () => void {
    const w: ScopeWatcher = { scopeClosed: fn };
    this.watch(w);
    return () => this.unwatch(w);
  }

  /**
   * `w.scopeClosed()` once when the client goes away (at once if it has), unless unwatched
   * before: onClose without the two closures (the callback and its remover) per stream chunk
   * (docs/benchmarks.md, "Stream chunks on the main thread").
   */
  watch(w: ScopeWatcher): void {
    if (this.closed) {
      w.scopeClosed();
      return;
    }
    this.watchers.add(w);
  }

  unwatch(w: ScopeWatcher): void {
    this.watchers.delete(w);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    const watchers = [...this.watchers];
    this.watchers.clear();
    for (const w of watchers) w.scopeClosed();
  }
}

