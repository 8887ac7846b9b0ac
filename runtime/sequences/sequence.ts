// What a sequence (a stream of a stateful model) is, as the two halves of sequences/ share it:
// the request path (sequence-manager.ts: one request of a sequence at the batcher at a time,
// the state carried from one to the next) and the live set (live-sequences.ts: who owns a
// sequence, how many may live, when an idle one ends).
import type { TimerHandle } from '../base/clock.js';
import type { RequestTrace } from '../base/request-trace.js';
import type { CloseScope } from '../batching/queued-request.js';
import type { ModelInstance } from '../batching/model-instance.js';
import type { Tensor } from '../tensor/tensor.js';

/**
 * The client's connection as sequences see it (inference/client-scope.ts is the one given): a
 * sequence belongs to the scope that started it, within the scope's limits.
 */
export interface ClientScope extends CloseScope {
  readonly isClosed: boolean;
  onClose(fn: () => void): () => void;
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

/** A request of a sequence, from its arrival until it is answered. */
export interface PendingRequest {
  req: SequenceRequest;
  scope: ClientScope | undefined;
  to: SequenceListener;
  /** The version it was handed to the batcher on (set then). */
  instance: ModelInstance | null;
}

export interface Sequence {
  model: string;
  id: string;
  instance: ModelInstance | null;
  state: Map<string, Tensor>;
  // The request path's (sequence-manager.ts):
  /** Requests waiting behind `current`, in arrival order. */
  queue: PendingRequest[];
  /** Its request at the batcher (queued or running there): at most one at a time. */
  current: PendingRequest | null;
  /** Inside advance(): a request settled from within it is followed by that loop, not another. */
  advancing: boolean;
  /** The batcher's callbacks for `current`, made once per sequence (not per request). */
  ran: (outputs: Tensor[]) => void;
  failed: (err: Error) => void;
  // The live set's (live-sequences.ts):
  idleTimer: TimerHandle | null;
  /** When its queue last ran dry (clock ms): idleness is counted from here. */
  idleSince: number;
  /** The scope that started it, while that scope is open. */
  owner: ClientScope | null;
}
