// The live sequences: which are live, who owns them, how many may be, and when an idle one ends.
//
// Ownership (docs/reliability.md): a sequence belongs to the client scope (connection) that
// started it. A scope may hold at most its maxSequences at once, and when it is tied
// (sequencesEndWithConnection, the default for WebSocket) its sequences end when it closes and
// no other scope may use them (foreign()).
// A model holds at most its maxSequences in all; a sequence whose queue stays dry for the
// model's idleTimeoutMs ends. Freeing one releases the version it is pinned to.
import type { Clock } from '../base/clock.js';
import { PerchError } from '../base/errors.js';
import type { ModelInstance } from '../batching/model-instance.js';
import type { ModelRegistry } from '../models/registry.js';
import { byteLength } from '../tensor/tensor.js';
import type { ClientScope, Sequence, SequenceRequest } from './sequence.js';

/** The live sequences one scope started, and how to stop listening for its close. */
interface Owned {
  sequences: Set<Sequence>;
  off: () => void;
}

export interface SequenceStats {
  model: string;
  active: number;
  stateBytes: number;
}

export class LiveSequences {
  /**
   * By model, then by sequence id: a stream chunk's lookups use the strings of its message as
   * they are (short ones come out of JSON.parse internalized, their hash known), where a
   * "model\0id" key was a new string to build, flatten and hash for every chunk (issue 20).
   */
  private readonly sequences = new Map<string, Map<string, Sequence>>();
  private readonly perModel = new Map<string, number>();
  private readonly owners = new Map<ClientScope, Owned>();

  constructor(
    private readonly registry: ModelRegistry<ModelInstance>,
    private readonly clock: Clock,
    /** Told when a start is refused for the limit (the runtime records an event). */
    private readonly onLimit: (model: string, max: number) => void,
  ) {}

  /** The live sequence `id` of `model`, if any. */
  get(model: string, id: string): Sequence | undefined {
    return this.sequences.get(model)?.get(id);
  }

  /** Whether `seq` is still live (not ended, idled out or freed with its connection). */
  has(seq: Sequence): boolean {
    return this.sequences.get(seq.model)?.get(seq.id) === seq;
  }

  /**
   * Why `scope` may not use the live `seq`, or null. A sequence that ends with the connection
   * that started it (a WebSocket's, a gRPC stream's) is that connection's alone: another one
   * could otherwise feed it, read its state (asking for the state output), restart or end it
   * by naming its id (docs/reliability.md "Sequences"). Sequences not tied to a connection
   * (HTTP's, by default) are anyone's who names them, as in Triton: HTTP clients may open a new
   * connection per request.
   */
  foreign(seq: Sequence, scope: ClientScope | undefined): PerchError | null {
    const owner = seq.owner;
    if (owner === null || owner === scope || !owner.options.sequencesEndWithConnection) return null;
    return new PerchError('PERCH_ERR_SEQUENCE_IN_USE', `model '${seq.model}' has a live sequence '${seq.id}' that another connection started; it ends with that connection, and only that one may feed, restart or end it: use another sequence_id`);
  }

  /** Why a request for a sequence that is not live is refused, or null: it starts one. */
  refusal(req: SequenceRequest, scope: ClientScope | undefined): PerchError | null {
    if (!req.start) {
      return new PerchError('PERCH_ERR_SEQUENCE_UNKNOWN', `model '${req.model}' has no live sequence '${req.sequenceId}': send sequence_start first`);
    }
    if (scope?.isClosed) return new PerchError('PERCH_ERR_CLIENT_GONE', 'the client closed its connection');
    const max = (req.instance ?? this.registry.resolve(req.model, req.version)).config.sequence?.maxSequences ?? 0;
    const active = this.perModel.get(req.model) ?? 0;
    if (active >= max) {
      this.onLimit(req.model, max);
      return new PerchError('PERCH_ERR_SEQUENCE_LIMIT', `model '${req.model}' holds ${active} live sequences (maxSequences ${max})`);
    }
    const mine = scope ? (this.owners.get(scope)?.sequences.size ?? 0) : 0;
    if (scope && mine >= scope.options.maxSequences) {
      return new PerchError('PERCH_ERR_SEQUENCE_LIMIT', `this connection holds ${mine} live sequences (server.maxSequencesPerConnection ${scope.options.maxSequences})`);
    }
    return null;
  }

  /** A sequence that refusal() let start is live, and owned by `scope` if there is one. */
  add(seq: Sequence, scope: ClientScope | undefined): void {
    let ofModel = this.sequences.get(seq.model);
    if (!ofModel) this.sequences.set(seq.model, (ofModel = new Map()));
    ofModel.set(seq.id, seq);
    this.perModel.set(seq.model, (this.perModel.get(seq.model) ?? 0) + 1);
    if (scope) this.own(scope, seq);
  }

  stats(): SequenceStats[] {
    const out = new Map<string, SequenceStats>();
    for (const s of this.all()) {
      const m = out.get(s.model) ?? { model: s.model, active: 0, stateBytes: 0 };
      m.active++;
      for (const t of s.state.values()) m.stateBytes += byteLength(t);
      out.set(s.model, m);
    }
    return [...out.values()];
  }


  private *all(): Iterable<Sequence> {
    for (const ofModel of this.sequences.values()) yield* ofModel.values();
  }

  private own(scope: ClientScope, seq: Sequence): void {
    let owned = this.owners.get(scope);
    if (!owned) {
      const o: Owned = { sequences: new Set(), off: () => undefined };
      this.owners.set(scope, o);
      o.off = scope.onClose(() => this.disown(scope));
      owned = o;
    }
    owned.sequences.add(seq);
    seq.owner = scope;
  }

  /** The scope closed: tied sequences end now (their queued requests are dropped); others live on unowned. */
  private disown(scope: ClientScope): void {
    const owned = this.owners.get(scope);
    if (!owned) return;
    this.owners.delete(scope);
    for (const seq of owned.sequences) {
      seq.owner = null;
      if (!scope.options.sequencesEndWithConnection) continue;
      for (const p of seq.queue.splice(0)) p.to.reject(new PerchError('PERCH_ERR_CLIENT_GONE', 'the client closed its connection; its sequence ended'));
      this.free(seq);
    }
  }

  /** Frees every sequence (shutdown): their versions can then be released. */
  close(): void {
    for (const s of [...this.all()]) {
      for (const p of s.queue.splice(0)) p.to.reject(new PerchError('PERCH_ERR_SHUTTING_DOWN', 'the runtime is stopping'));
      this.free(s);
    }
  }

  /**
   * Called when the queue runs dry. One timer per sequence stays armed and is re-armed for the
   * rest of the idle time when it finds the sequence was busy meanwhile, instead of a clear and
   * a new timer for every chunk (tens of thousands a second with hundreds of streams).
   */
  armIdle(seq: Sequence): void {
    seq.idleSince = this.clock.now();
    if (!seq.idleTimer) this.idleCheckIn(seq, seq.instance?.config.sequence?.idleTimeoutMs);
  }

  /** The sequence (re)starts on a version: its next idle timer is armed with that version's idleTimeoutMs. */
  disarmIdle(seq: Sequence): void {
    if (seq.idleTimer) this.clock.clearTimeout(seq.idleTimer);
    seq.idleTimer = null;
  }

  private idleCheckIn(seq: Sequence, ms: number | undefined): void {
    if (!ms || !this.has(seq)) return;
    seq.idleTimer = this.clock.setTimeout(() => {
      seq.idleTimer = null;
      if (seq.current !== null || seq.queue.length > 0) return; // armIdle runs again when it drains
      const idle = seq.instance?.config.sequence?.idleTimeoutMs ?? 0;
      const left = seq.idleSince + idle - this.clock.now();
      if (left <= 0) this.free(seq);
      else this.idleCheckIn(seq, left);
    }, ms);
  }

  /** It ends: no longer live or owned, its timer cleared, its version released and its state dropped. */
  free(seq: Sequence): void {
    if (!this.has(seq)) return;
    const ofModel = this.sequences.get(seq.model) as Map<string, Sequence>;
    ofModel.delete(seq.id);
    if (ofModel.size === 0) this.sequences.delete(seq.model);
    this.perModel.set(seq.model, (this.perModel.get(seq.model) ?? 1) - 1);
    if (seq.owner) {
      const owned = this.owners.get(seq.owner);
      owned?.sequences.delete(seq);
      if (owned && owned.sequences.size === 0) {
        owned.off();
        this.owners.delete(seq.owner);
      }
      seq.owner = null;
    }
    if (seq.idleTimer) this.clock.clearTimeout(seq.idleTimer);
    seq.instance?.unpin();
    seq.instance = null;
    seq.state.clear();
  }
}
