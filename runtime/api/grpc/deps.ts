// What the gRPC API is given by the runtime: the same request path, registry, token and limits
// as the HTTP and WebSocket APIs (docs/grpc.md).
import type { ClientBudget } from '../client-budget.js';
import type { InferService } from '../../inference/infer-service.js';
import type { ScopeOptions } from '../../inference/client-scope.js';
import type { Logger } from '../../base/log.js';
import type { ModelRegistry } from '../../models/registry.js';
import type { ModelInstance } from '../../batching/model-instance.js';
import type { Tracing } from '../../base/tracing.js';
import type { Clock } from '../../base/clock.js';

export interface GrpcDeps {
  registry: ModelRegistry<ModelInstance>;
  service: InferService;
  /** Bearer token every RPC but ServerLive/ServerReady needs; null = none. */
  apiToken: string | null;
  /** server.maxClientBytes, shared with HTTP and WebSocket. */
  budget: ClientBudget;
  /** Largest message accepted (server.maxRequestBytes). */
  maxRequestBytes: number;
  /** Unanswered requests one ModelStreamInfer stream may have before it is not read from. */
  maxInflightPerStream: number;
  /** Answer bytes one stream may have unwritten before it is not read from. */
  maxBufferedBytesPerStream: number;
  /** Sequence limits of a stream (server.maxSequencesPerConnection, server.sequencesEndWithConnection.grpc). */
  scope: ScopeOptions;
  log: Logger;
  /** An answer not taken by its client this long cuts its call off (server.slowReaderTimeoutMs; slow-reader.ts). */
  slowReaderTimeoutMs: number;
  clock: Clock;
  /** OpenTelemetry (docs/observability.md); absent or off: requests are not traced. */
  tracing?: Tracing | undefined;
}
