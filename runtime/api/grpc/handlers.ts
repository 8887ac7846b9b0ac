// The unary RPCs of inference.GRPCInferenceService (proto/inference.proto; docs/grpc.md): the
// health and metadata answers mirror the HTTP endpoints (docs/protocol.md section 3), and
// ModelInfer goes through the one request path HTTP and WebSocket use (InferService).
import type * as GrpcJs from '@grpc/grpc-js';
import { PerchError, toPerchError } from '../../base/errors.js';
import { ClientScope } from '../../inference/client-scope.js';
import { parseVersion, type InferRequest } from '../../inference/infer-service.js';
import { RUNTIME_VERSION } from '../../base/version.js';
import { bearerMatches } from '../auth.js';
import { EXTENSIONS } from '../http/routes.js';
import { modelStatistics } from '../statistics.js';
import { RequestTrace } from '../../base/request-trace.js';
import type { GrpcDeps } from './deps.js';
import type { ModelInferRequestMsg, ModelInferResponseMsg, Received } from './messages.js';
import { fromParameterMap } from './parameters.js';
import { errorText, grpcStatusOf } from './status.js';
import { decodeInputs, encodeResponse, requestedOutputs, responseBytes } from './tensors.js';
import { holdUntilSent, http2StreamOf } from './slow-reader.js';

/** OIP platform name of an ONNX model (docs/grpc.md "platform"): Triton's, which its clients expect. */
export const PLATFORM = 'onnxruntime_onnx';

/** A PerchError as the status grpc-js sends: code, "PERCH_ERR_...: message", and the code in trailers. */
export function toStatus(grpc: typeof GrpcJs, err: unknown): Partial<GrpcJs.StatusObject> {
  const e = toPerchError(err);
  const metadata = new grpc.Metadata();
  metadata.set('perch-error-code', e.code);
  return { code: grpcStatusOf(e.code), details: errorText(e), metadata };
}

export function authorized(deps: GrpcDeps, metadata: GrpcJs.Metadata): boolean {
  const v = metadata.get('authorization')[0];
  return bearerMatches(typeof v === 'string' ? v : undefined, deps.apiToken);
}

export function traceparentOf(metadata: GrpcJs.Metadata): string | undefined {
  const v = metadata.get('traceparent')[0];
  return typeof v === 'string' ? v : undefined;
}

function requireToken(deps: GrpcDeps, metadata: GrpcJs.Metadata): void {
  if (!authorized(deps, metadata)) throw new PerchError('PERCH_ERR_UNAUTHORIZED', "missing or wrong bearer token (metadata 'authorization: Bearer <token>')");
}

export function toInferRequest(m: ModelInferRequestMsg): InferRequest {
  if (m.model_name === '') throw new PerchError('PERCH_ERR_INVALID_MESSAGE', 'model_name is empty');
  if (m.inputs.length === 0) throw new PerchError('PERCH_ERR_INVALID_MESSAGE', 'inputs is empty');
  return {
    model: m.model_name,
    version: m.model_version === '' ? undefined : m.model_version,
    id: m.id === '' ? undefined : m.id,
    inputs: decodeInputs(m),
    outputs: requestedOutputs(m),
    parameters: fromParameterMap(m.parameters),
  };
}

/**
 * Runs one ModelInferRequest: budget first (the wire bytes and the answer count against
 * server.maxClientBytes while held), then the shared request path.
 */
export async function runInfer(deps: GrpcDeps, received: Received<ModelInferRequestMsg>, scope: ClientScope, hold: ReturnType<GrpcDeps['budget']['hold']>, trace?: RequestTrace): Promise<ModelInferResponseMsg> {
  if (received.error) throw received.error;
  if (received.message === null || !hold.tryAdd(received.wireBytes)) throw deps.budget.refusal('gRPC request', received.wireBytes);
  const request = toInferRequest(received.message);
  request.trace = trace;
  const result = await deps.service.infer(request, scope);
  const answer = encodeResponse(result);
  // Unread until sent (slow-reader.ts): counted in the budget's share for unread answers.
  hold.addUnread(responseBytes(answer));
  return answer;
}

type Unary = (call: GrpcJs.ServerUnaryCall<unknown, unknown>, callback: GrpcJs.sendUnaryData<unknown>) => void;

export function unaryHandlers(grpc: typeof GrpcJs, deps: GrpcDeps): Record<string, Unary> {
  /** A handler that answers or fails with a coded status; `open` ones need no token (health). */
  const unary = (fn: (req: Record<string, unknown>, call: GrpcJs.ServerUnaryCall<unknown, unknown>) => unknown, open = false): Unary =>
    (call, callback) => {
      (async () => {
        if (!open) requireToken(deps, call.metadata);
        // Every RPC's decoder hands over a Received (server.ts serviceDefinition): bytes that are not its message are coded.
        const received = call.request as Received<Record<string, unknown>>;
        if (received.error) throw received.error;
        return fn(received.message ?? {}, call);
      })().then(
        (answer) => callback(null, answer),
        (err: unknown) => callback(toStatus(grpc, err)),
      );
    };
  return {
    ServerLive: unary(() => ({ live: true }), true),
    ServerReady: unary(() => ({ ready: deps.registry.isReady() }), true),
    // OIP: `ready` is false for a model that is unknown or not loaded (HTTP answers 404 / 503).
    ModelReady: unary((req) => {
      try {
        deps.registry.resolve(String(req.name), parseVersion(String(req.version ?? '')));
        return { ready: true };
      } catch (err) {
        if (err instanceof PerchError && err.status !== 500) return { ready: false };
        throw err;
      }
    }),
    ServerMetadata: unary(() => ({ name: 'perch', version: RUNTIME_VERSION, extensions: EXTENSIONS })),
    ModelMetadata: unary((req) => {
      const inst = deps.registry.resolve(String(req.name), parseVersion(String(req.version ?? '')));
      const spec = (t: { name: string; datatype: string; dims: number[] }): Record<string, unknown> => ({ name: t.name, datatype: t.datatype, shape: t.dims });
      return {
        name: inst.name,
        versions: deps.registry.statusOf(inst.name).served.map(String),
        platform: PLATFORM,
        inputs: inst.config.inputs.map(spec),
        outputs: inst.config.outputs.map(spec),
      };
    }),
    // Triton: empty name = every model, empty version = every served version (as GET /v2/models/stats).
    ModelStatistics: unary((req) => {
      const name = String(req.name ?? '');
      return name === '' ? modelStatistics(deps.registry) : modelStatistics(deps.registry, name, String(req.version ?? ''));
    }),
    ModelInfer: (call, callback) => {
      // One scope per call: a cancelled call drops its queued work. Sequences over unary calls
      // outlive the call (they end with sequence_end or idle out), as over HTTP by default.
      const scope = new ClientScope({ maxSequences: deps.scope.maxSequences, sequencesEndWithConnection: false });
      const hold = deps.budget.hold();
      call.once('cancelled', () => scope.close());
      // The call's `traceparent` metadata, if any, is the parent (docs/observability.md).
      const trace = deps.tracing?.enabled ? new RequestTrace(deps.tracing, 'grpc', traceparentOf(call.metadata)) : undefined;
      (async () => {
        requireToken(deps, call.metadata);
        return runInfer(deps, call.request as Received<ModelInferRequestMsg>, scope, hold, trace);
      })().then(
        (answer) => {
          callback(null, answer);
          trace?.end();
        },
        (err: unknown) => {
          callback(toStatus(grpc, err));
          if (trace) trace.end(toPerchError(err).code, (err as Error).message);
        },
      ).finally(() => {
        scope.close();
        // The answer stays held until it is sent; one the client does not take resets the call.
        holdUntilSent(http2StreamOf(call), hold, deps);
      });
    },
  };
}
