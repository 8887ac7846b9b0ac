// Stateful (sequence) batching, Triton's sequence batcher for the edge. Each sequence keeps its
// state tensors between requests; the runtime feeds them in and stores what the model outputs.
//
// Ordering: every sequence has its own FIFO, and only its head request is handed to the batcher.
// So requests of one sequence run strictly in arrival order and never two in the same batch,
// while requests of different sequences batch freely (state stacked along its batchAxis).
// A sequence is pinned to the model version it started on until it ends or idles out, even
// across a hot swap; the old version is released when its last sequence lets go.
//
// Ownership (docs/reliability.md): a sequence belongs to the client scope (connection) that
// started it. A scope may hold at most its maxSequences at once, and when it is tied
// (sequencesEndWithConnection, the default for WebSocket) its sequences end when it closes.
import type { Clock, TimerHandle } from '../base/clock.js';
import { PerchError } from '../base/errors.js';
import type { RequestTrace } from '../base/request-trace.js';
import type { CloseScope } from '../batching/batcher.js';
import type { ModelInstance } from '../batching/model-instance.js';
import { prepareInputs } from '../batching/prepare.js';
import type { ModelRegistry } from '../models/registry.js';
import { allocate, type Datatype, type TensorData } from '../tensor/datatypes.js';
import { retain } from '../tensor/retained.js';
import { byteLength, elementCount, type Tensor } from '../tensor/tensor.js';

/**
 * The client's connection as sequences see it (inference/client-scope.ts is the one given): a
 * sequence belongs to the scope that started it, within the scope's limits.
 */
export interface ClientScope extends CloseScope {
  readonly isClosed: boolean;
  readonly options: { readonly maxSequences: number; readonly sequencesEndWithConnection: boolean };
}

export interface SequenceRequest {
  model: string;
  version: number | undefined;
  /**
   * The version the caller resolved (model, version) to in this same tick, so it is not looked
   * up again; absent: looked up here.
   */
  instance?: ModelInstance | undefined;
  sequenceId: string;
  start: boolean;
  end: boolean;
  /** The client's inputs (state inputs excluded: the runtime feeds those). */
  inputs: Tensor[];
  priority: number | undefined;
  timeoutMs: number | undefined;
  /** Its spans while tracing is on: the batch it rides in adds perch.queue and perch.compute. */
  trace?: RequestTrace | undefined;
}

export interface SequenceResult {
  instance: ModelInstance;
  /** Every model output, state outputs included. */
  outputs: Tensor[];
}

/** Told how one sequence request ended, once (submitTo); a promise's resolve and reject fit. */
export interface SequenceListener {
  resolve(r: SequenceResult): void;
  reject(e: Error): void;
}

interface Pending {
  req: SequenceRequest;
  scope: ClientScope | undefined;
  to: SequenceListener;
  /** The version it was handed to the batcher on (set then). */
  instance: ModelInstance | null;
}

interface Sequence {
  key: string;
  model: string;
  id: string;
  instance: ModelInstance | null;
  state: Map<string, Tensor>;
  /** Requests waiting behind `current`, in arrival order. */
  queue: Pending[];
  /** Its request at the batcher (queued or running there): at most one at a time. */
  current: Pending | null;
  /** Inside advance(): a request settled from within it is followed by that loop, not another. */
  advancing: boolean;
  /** The batcher's callbacks for `current`, made once per sequence (not per request). */
  ran: (outputs: Tensor[]) => void;
  failed: (err: Error) => void;
  idleTimer: TimerHandle | null;
  /** When its queue last ran dry (clock ms): idleness is counted from here. */
  idleSince: number;
  /** The scope that started it, while that scope is open. */
  owner: ClientScope | null;
}

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

export class SequenceManager {
  private readonly sequences = new Map<string, Sequence>();
  private readonly perModel = new Map<string, number>();
  private readonly owners = new Map<ClientScope, Owned>();

  constructor(
    private readonly registry: ModelRegistry<ModelInstance>,
    private readonly clock: Clock,
    /** Told when a start is refused for the limit (the runtime records an event). */
    private readonly onLimit: (model: string, max: number) => void = () => undefined,
  ) {}

  submit(req: SequenceRequest, scope?: ClientScope): Promise<SequenceResult> {
    return new Promise<SequenceResult>((resolve, reject) => this.submitTo(req, scope, { resolve, reject }));
  }

  /**
   * submit() without a promise: `to` is told the outcome (a refusal at once, from here). The
   * infer service answers a stream chunk from its callback (docs/benchmarks.md, "Stream chunks
   * on the main thread").
   */
  submitTo(req: SequenceRequest, scope: ClientScope | undefined, to: SequenceListener): void {
    const key = `${req.model}\u0000${req.sequenceId}`;
    let seq = this.sequences.get(key);
    if (!seq) {
      const refused = this.startRefusal(req, scope);
      if (refused) {
        to.reject(refused);
        return;
      }
      const active = this.perModel.get(req.model) ?? 0;
      seq = this.create(key, req.model, req.sequenceId);
      this.sequences.set(key, seq);
      this.perModel.set(req.model, active + 1);
      if (scope) this.own(scope, seq);
    }
    seq.queue.push({ req, scope, to, instance: null });
    if (seq.current === null && !seq.advancing) this.advance(seq, true);
  }

  /** Why a request for a sequence that is not live is refused, or null: it starts one. */
  private startRefusal(req: SequenceRequest, scope: ClientScope | undefined): PerchError | null {
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

  private create(key: string, model: string, id: string): Sequence {
    const seq: Sequence = {
      key, model, id, instance: null, state: new Map(), queue: [], current: null, advancing: false,
      ran: (outputs) => this.ran(seq, outputs),
      failed: (err) => this.failed(seq, err),
      idleTimer: null, idleSince: 0, owner: null,
    };
    return seq;
  }

  stats(): SequenceStats[] {
    const out = new Map<string, SequenceStats>();
    for (const s of this.sequences.values()) {
      const m = out.get(s.model) ?? { model: s.model, active: 0, stateBytes: 0 };
      m.active++;
      for (const t of s.state.values()) m.stateBytes += byteLength(t);
      out.set(s.model, m);
    }
    return [...out.values()];
  }

  /** Live sequences started by this scope (tests, diagnostics). */
  ownedBy(scope: ClientScope): number {
    return this.owners.get(scope)?.sequences.size ?? 0;
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
    for (const s of [...this.sequences.values()]) {
      for (const p of s.queue.splice(0)) p.to.reject(new PerchError('PERCH_ERR_SHUTTING_DOWN', 'the runtime is stopping'));
      this.free(s);
    }
  }

  /**
   * Hands the sequence's next queued request to the batcher, if none of its requests is there:
   * its requests run one after another, in arrival order. No async function and no promise
   * between the batcher and the request's own: the batcher calls ran() / failed(), which answer
   * it and come back here (docs/benchmarks.md, "Stream chunks on the main thread").
   * `fresh`: called by submit with the request it just queued, whose resolved instance is still
   * the one served; later ones are looked up again.
   */
  private advance(seq: Sequence, fresh: boolean): void {
    seq.advancing = true;
    let sameTick = fresh;
    while (seq.current === null && this.sequences.get(seq.key) === seq && seq.queue.length > 0) {
      const next = seq.queue.shift() as Pending;
      const resolved = sameTick ? next.req.instance : undefined;
      sameTick = false;
      try {
        if (next.req.start) this.restart(seq, next.req, resolved);
        this.hand(seq, next);
      } catch (err) {
        this.settleFailed(seq, next, err as Error);
      }
    }
    seq.advancing = false;
    if (seq.current !== null) return;
    if (this.sequences.get(seq.key) === seq) this.armIdle(seq);
    else for (const p of seq.queue.splice(0)) this.resubmit(p); // requests queued behind an end
  }

  /** Checks the request against the sequence and hands it, with the state, to the batcher. */
  private hand(seq: Sequence, p: Pending): void {
    const req = p.req;
    const instance = seq.instance;
    const cfg = instance?.config.sequence;
    if (!instance || !cfg) throw new PerchError('PERCH_ERR_SEQUENCE_UNKNOWN', `sequence '${seq.id}' has not started`);
    for (const t of req.inputs) {
      if (seq.state.has(t.name)) {
        throw new PerchError('PERCH_ERR_UNKNOWN_INPUT', `input '${t.name}' is sequence state: the runtime feeds it, the request must not`);
      }
    }
    // The state goes in as it is, not copied: stacking copies it into the batch, and the worker
    // executor copies a retained buffer rather than moving it (tensor/retained.ts). Nothing
    // writes to it during the run, so a failed run leaves the sequence's state as it was.
    const inputs = req.inputs.slice();
    for (const s of cfg.state) inputs.push(seq.state.get(s.input) as Tensor);
    const prepared = prepareInputs(instance.config, inputs);
    prepared.trace = req.trace;
    if (prepared.items !== 1) {
      throw new PerchError('PERCH_ERR_SHAPE_MISMATCH', `a sequence request carries one item on the batch axis, this one has ${prepared.items}`);
    }
    p.instance = instance;
    seq.current = p;
    const refused = instance.enqueue(prepared, { priority: req.priority, timeoutMs: req.timeoutMs, scope: p.scope }, seq.ran, seq.failed);
    if (refused) {
      seq.current = null;
      throw refused;
    }
  }

  /** The batcher ran the sequence's current request: its state moves on and it is answered. */
  private ran(seq: Sequence, outputs: Tensor[]): void {
    const p = seq.current as Pending;
    seq.current = null;
    try {
      const instance = p.instance as ModelInstance;
      const cfg = instance.config.sequence;
      if (cfg && !p.req.end) { // an ended sequence's state is freed right after this
        for (const s of cfg.state) {
          const next = outputs.find((t) => t.name === s.output);
          if (next) storeState(seq, s.input, next);
        }
      }
      p.to.resolve({ instance, outputs });
      if (p.req.end) this.free(seq);
    } catch (err) {
      this.settleFailed(seq, p, err as Error);
    }
    if (!seq.advancing) this.advance(seq, false);
  }

  /** The batcher refused, dropped or failed the sequence's current request. */
  private failed(seq: Sequence, err: Error): void {
    const p = seq.current as Pending;
    seq.current = null;
    this.settleFailed(seq, p, err);
    if (!seq.advancing) this.advance(seq, false);
  }

  private settleFailed(seq: Sequence, p: Pending, err: Error): void {
    p.to.reject(err);
    if (seq.instance === null) this.free(seq); // its start failed: nothing to continue
  }

  /** Requests that arrived after an end start over: a new sequence, or an unknown one. */
  private resubmit(p: Pending): void {
    try {
      this.submitTo({ ...p.req, instance: undefined }, p.scope, p.to);
    } catch (err) {
      p.to.reject(err as Error); // its model went away meanwhile (registry.resolve)
    }
  }

  private restart(seq: Sequence, req: SequenceRequest, resolved: ModelInstance | undefined): void {
    const instance = resolved ?? this.registry.resolve(req.model, req.version);
    const cfg = instance.config.sequence;
    if (!cfg) throw new PerchError('PERCH_ERR_INVALID_PARAMETER', `model '${req.model}' is not a sequence model`);
    seq.instance?.unpin();
    instance.pin();
    seq.instance = instance;
    seq.state.clear();
    // The idle timer was armed with the old version's idleTimeoutMs: the next one uses the new.
    if (seq.idleTimer) this.clock.clearTimeout(seq.idleTimer);
    seq.idleTimer = null;
    for (const s of cfg.state) {
      const spec = instance.config.inputs.find((t) => t.name === s.input)!;
      const shape = spec.dims.map((d, i) => (i === spec.batchAxis ? 1 : d));
      seq.state.set(s.input, stateTensor(s.input, spec.datatype, shape, allocate(spec.datatype, elementCount(shape))));
    }
  }

  /**
   * Called when the queue runs dry. One timer per sequence stays armed and is re-armed for the
   * rest of the idle time when it finds the sequence was busy meanwhile, instead of a clear and
   * a new timer for every chunk (tens of thousands a second with hundreds of streams).
   */
  private armIdle(seq: Sequence): void {
    seq.idleSince = this.clock.now();
    if (!seq.idleTimer) this.idleCheckIn(seq, seq.instance?.config.sequence?.idleTimeoutMs);
  }

  private idleCheckIn(seq: Sequence, ms: number | undefined): void {
    if (!ms || this.sequences.get(seq.key) !== seq) return;
    seq.idleTimer = this.clock.setTimeout(() => {
      seq.idleTimer = null;
      if (seq.current !== null || seq.queue.length > 0) return; // armIdle runs again when it drains
      const idle = seq.instance?.config.sequence?.idleTimeoutMs ?? 0;
      const left = seq.idleSince + idle - this.clock.now();
      if (left <= 0) this.free(seq);
      else this.idleCheckIn(seq, left);
    }, ms);
  }

  private free(seq: Sequence): void {
    if (this.sequences.get(seq.key) !== seq) return;
    this.sequences.delete(seq.key);
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

function stateTensor(name: string, datatype: Datatype, shape: number[], data: TensorData): Tensor {
  retain(data);
  return { name, datatype, shape, data };
}

/**
 * The new state is copied into the sequence's own buffer: a batch's output split along its
 * batch axis is a view of the whole batch's buffer, which a long-lived sequence would otherwise
 * keep alive, and reusing the buffer spares an allocation per request. A new buffer only when
 * the size changed.
 */
function storeState(seq: Sequence, input: string, next: Tensor): void {
  const cur = seq.state.get(input);
  const from = next.data;
  if (cur && !Array.isArray(from) && !Array.isArray(cur.data) && cur.datatype === next.datatype && cur.data.length === from.length) {
    (cur.data as typeof from).set(from as never);
    if (!sameShape(cur.shape, next.shape)) cur.shape = next.shape.slice();
  } else {
    seq.state.set(input, stateTensor(input, next.datatype, next.shape.slice(), from.slice()));
  }
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
