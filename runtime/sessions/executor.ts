import type { Tensor } from '../tensor/tensor.js';

/** What onnxruntime reports of one input or output. */
export interface OrtTensorMetadata {
  name: string;
  isTensor: boolean;
  type?: string;
  shape?: ReadonlyArray<number | string>;
}

/**
 * The client of a batch of one request, as an executor that can stop midway watches it: told once
 * when the client goes away (batching/queued-request.ts CloseScope, which sessions/ may not import).
 */
export interface RunScope {
  watch(w: { scopeClosed(): void }): void;
  unwatch(w: { scopeClosed(): void }): void;
}

export interface ExecutorResult {
  outputs: Tensor[];
  /** How long session.run took where it ran: not the wait behind an earlier batch, nor the hop. */
  runMs: number;
  /**
   * The feeds' buffers, moved back from the session thread after the run and used by nobody:
   * the model instance gives them to its pool (tensor/buffer-pool.ts). Absent where the feeds
   * were not moved (inline, pipelines).
   */
  returned?: ArrayBuffer[];
  /**
   * The outputs' buffers are new and held by nobody else (copies made by onnxruntime-node, moved
   * here from a session thread): splitting a batch may reorder them in place (tensor.ts
   * splitAlongAxis). Absent where an output may be shared (pipelines).
   */
  owned?: boolean;
}

/** Runs batches on one onnxruntime session, wherever that session lives. */
export interface Executor {
  readonly inputs: OrtTensorMetadata[];
  readonly outputs: OrtTensorMetadata[];
  readonly providers: string[];
  readonly warnings: string[];
  /** False while the session cannot take a batch now (its thread is being started again). */
  readonly available: boolean;
  /** False while an on-demand session has not been opened yet (sessions/on-demand-executor.ts). */
  readonly opened?: boolean;
  /** Times the session was opened again to give back its arena (session-renewal.ts; threads only). */
  readonly renewals?: number;
  /** Every open session of the model is busy: an on-demand session opens now (others ignore it). */
  demand?(): void;
  /**
   * Runs one batch; resolves to every model output. Rejects with PERCH_ERR_INFERENCE_FAILED. The
   * worker executor may move (transfer) the feeds' buffers: a feed is not to be used after run,
   * and one whose buffer is gone is refused with PERCH_ERR_TENSOR_DATA (worker-executor.ts).
   * `scope`: a batch of one request's client, for an executor that can stop midway (a pipeline);
   * sessions ignore it.
   */
  run(feeds: Tensor[], scope?: RunScope): Promise<ExecutorResult>;
  /** Releases the session (and its thread). Only called once nothing is running. */
  close(): Promise<void>;
}
