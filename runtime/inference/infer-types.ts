// The shapes of an inference request, its result and its outcome, shared by the infer service
// (infer-service.ts, which exports them to the APIs) and the call that runs one (infer-call.ts).
import type { ErrorCode } from '../base/errors.js';
import type { RequestTrace } from '../base/request-trace.js';
import type { Tensor } from '../tensor/tensor.js';

/** How one inference ended, told to onOutcome listeners (the rollback circuit breaker). */
export interface InferenceOutcome {
  model: string;
  version: number;
  ok: boolean;
  code?: ErrorCode;
  /** From the request's arrival to its answer (queue + compute), for the device's in-service health. */
  latencyMs?: number;
}

export interface RequestedOutput {
  name: string;
  /** Triton: this output as binary data (true) or JSON (false); undefined = the transport's default. */
  binary?: boolean | undefined;
}

export interface InferRequest {
  model: string;
  version?: string | number | undefined;
  id?: string | undefined;
  inputs: Tensor[];
  outputs?: RequestedOutput[] | undefined;
  parameters?: Record<string, unknown> | undefined;
  /** Its spans, made by the API while tracing is on (base/request-trace.ts); the API ends it. */
  trace?: RequestTrace | undefined;
}

export interface InferResult {
  model_name: string;
  model_version: string;
  id?: string;
  parameters: Record<string, unknown>;
  outputs: Tensor[];
  /** How each output should be encoded: true = binary, false = JSON, undefined = transport default. */
  binary: Array<boolean | undefined>;
}
