// Stateful (sequence) batching, Triton's sequence batcher for the edge. Each sequence keeps its
// state tensors between requests; the runtime feeds them in and stores what the model outputs.
//
// Ordering: every sequence has its own FIFO, and only its head request is handed to the batcher.
// So requests of one sequence run strictly in arrival order and never two in the same batch,
// while requests of different sequences batch freely (state stacked along its batchAxis).
// A sequence is pinned to the model version it started on until it ends or idles out, even
// across a hot swap; the old version is released when its last sequence lets go.
//
// This file is a sequence's request path; which sequences are live, who owns them and their
// limits are live-sequences.ts's.
import type { Clock } from '../base/clock.js';
import { PerchError } from '../base/errors.js';
import type { ModelInstance } from '../batching/model-instance.js';
import { prepareInputs } from '../batching/prepare.js';
import type { ModelRegistry } from '../models/registry.js';
import { allocate, type Datatype, type TensorData } from '../tensor/datatypes.js';
import { retain } from '../tensor/retained.js';
import { elementCount, type Tensor } from '../tensor/tensor.js';
import { LiveSequences, type SequenceStats } from './live-sequences.js';
import type { ClientScope, PendingRequest, Sequence, SequenceListener, SequenceRequest, SequenceResult } from './sequence.js';

export class SequenceManager {
  private readonly live: LiveSequences;

  constructor(
    private readonly registry: ModelRegistry<ModelInstance>,
    clock: Clock,
    /** Told when a start is refused for the limit (the runtime records an event). */
    onLimit: (model: string, max: number) => void = () => undefined,
  ) {
    this.live = new LiveSequences(registry, clock, onLimit);
  }

  submit(req: SequenceRequest, scope?: ClientScope): Promise<SequenceResult> {
    return new Promise<SequenceResult>((resolve, reject) => this.submitTo(req, scope, { resolve, reject }));
  }

  /**
   * submit() without a promise: `to` is told the outcome (a refusal at once, from here). The
   * infer service answers a stream chunk from its callback (docs/benchmarks.md, "Stream chunks
   * on the main thread").
   */
  submitTo(req: SequenceRequest, scope: ClientScope | undefined, to: SequenceListener): void {
    let seq = this.live.get(req.model, req.sequenceId);
    if (seq) {
      const foreign = this.live.foreign(seq, scope);
      if (foreign) {
        to.reject(foreign);
        return;
      }
    } else {
      const refused = this.live.refusal(req, scope);
      if (refused) {
        to.reject(refused);
        return;
      }
      seq = this.create(req.model, req.sequenceId);
      this.live.add(seq, scope);
    }
    seq.queue.push({ req, scope, to, instance: null });
    if (seq.current === null && !seq.advancing) this.advance(seq, true);
  }

  private create(model: string, id: string): Sequence {
    const seq: Sequence = {
      model, id, instance: null, state: new Map(), queue: [], current: null, advancing: false,
      ran: (outputs) => this.ran(seq, outputs),
      failed: (err) => this.failed(seq, err),
      idleTimer: null, idleSince: 0, owner: null,
    };
    return seq;
  }

  stats(): SequenceStats[] {
    return this.live.stats();
  }


  /** Frees every sequence (shutdown): their versions can then be released. */
  close(): void {
    this.live.close();
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
    while (seq.current === null && this.live.has(seq) && seq.queue.length > 0) {
      const next = seq.queue.shift() as PendingRequest;
      const resolved = sameTick ? next.req.instance : undefined;
      sameTick = false;
      if (next.req.start) {
        try {
          this.restart(seq, next.req, resolved);
        } catch (err) {
          // Refused before anything changed (no such version, not a sequence model): a live
          // sequence goes on as it was.
          next.to.reject(err as Error);
          if (seq.instance === null) this.live.free(seq);
          continue;
        }
      }
      try {
        this.hand(seq, next);
      } catch (err) {
        this.settleFailed(seq, next, err as Error);
      }
    }
    seq.advancing = false;
    if (seq.current !== null) return;
    if (this.live.has(seq)) this.live.armIdle(seq);
    else for (const p of seq.queue.splice(0)) this.resubmit(p); // requests queued behind an end
  }

  /** Checks the request against the sequence and hands it, with the state, to the batcher. */
  private hand(seq: Sequence, p: PendingRequest): void {
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
    // Of its final length: slice() and then push() made the array twice (issue 20).
    const given = req.inputs.length;
    const inputs = new Array<Tensor>(given + cfg.state.length);
    for (let i = 0; i < given; i++) inputs[i] = req.inputs[i] as Tensor;
    for (let i = 0; i < cfg.state.length; i++) inputs[given + i] = seq.state.get((cfg.state[i] as { input: string }).input) as Tensor;
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
    const p = seq.current as PendingRequest;
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
      if (p.req.end) this.live.free(seq);
    } catch (err) {
      this.settleFailed(seq, p, err as Error);
    }
    if (!seq.advancing) this.advance(seq, false);
  }

  /** The batcher refused, dropped or failed the sequence's current request. */
  private failed(seq: Sequence, err: Error): void {
    const p = seq.current as PendingRequest;
    seq.current = null;
    this.settleFailed(seq, p, err);
    if (!seq.advancing) this.advance(seq, false);
  }

  /**
   * A start that failed (refused at the batcher for a full queue, timed out, a bad input, its
   * run failed) leaves no sequence: its state was already set to zeros and it was answered with
   * an error, so it is freed, and what follows it must start again. Left live, it held its
   * slots, and a request without sequence_start went on from a start the client was told failed.
   */
  private settleFailed(seq: Sequence, p: PendingRequest, err: Error): void {
    p.to.reject(err);
    if (seq.instance === null || p.req.start) this.live.free(seq);
  }

  /** Requests that arrived after an end start over: a new sequence, or an unknown one. */
  private resubmit(p: PendingRequest): void {
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
    this.live.disarmIdle(seq);
    for (const s of cfg.state) {
      const spec = instance.config.inputs.find((t) => t.name === s.input)!;
      const shape = spec.dims.map((d, i) => (i === spec.batchAxis ? 1 : d));
      seq.state.set(s.input, stateTensor(s.input, spec.datatype, shape, allocate(spec.datatype, elementCount(shape))));
    }
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
