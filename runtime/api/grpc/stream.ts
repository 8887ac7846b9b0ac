// Triton's ModelStreamInfer (docs/grpc.md "Streams"): many ModelInferRequests on one
// bidirectional stream, each answered by one ModelStreamInferResponse (in the order the answers
// are ready; clients match them by `id`). A failed request is answered with its
// `error_message` and the stream goes on. The stream is one client scope: its sequences end
// with it (server.sequencesEndWithConnection.grpc) and it may hold
// server.maxSequencesPerConnection of them. Flow control as for a WebSocket connection: with
// maxInflightPerStream unanswered requests, or maxBufferedBytesPerStream of unwritten answers,
// the stream is not read from until it catches up; one that takes no answers for
// slowReaderTimeoutMs is cut off (slow-reader.ts).
import type * as GrpcJs from '@grpc/grpc-js';
import { PerchError, toPerchError } from '../../base/errors.js';
import { ClientScope } from '../../inference/client-scope.js';
import type { Hold } from '../client-budget.js';
import type { GrpcDeps } from './deps.js';
import { authorized, runInfer, toStatus, traceparentOf } from './handlers.js';
import { RequestTrace } from '../../base/request-trace.js';
import type { ModelInferRequestMsg, Received } from './messages.js';
import { errorText } from './status.js';
import { responseBytes } from './tensors.js';
import { http2StreamOf, StreamReaderClock } from './slow-reader.js';

type Duplex = GrpcJs.ServerDuplexStream<unknown, unknown>;

export class StreamSet {
  private readonly open = new Set<() => void>();
  private stopping = false;

  constructor(private readonly grpc: typeof GrpcJs, private readonly deps: GrpcDeps) {}

  get size(): number {
    return this.open.size;
  }

  /** Shutdown: every stream ends (status OK) once its in-flight requests are answered. */
  stop(): void {
    this.stopping = true;
    for (const finish of [...this.open]) finish();
  }

  handle = (call: Duplex): void => {
    const { deps } = this;
    if (!authorized(deps, call.metadata)) {
      call.emit('error', toStatus(this.grpc, new PerchError('PERCH_ERR_UNAUTHORIZED', "missing or wrong bearer token (metadata 'authorization: Bearer <token>')")));
      return;
    }
    const scope = new ClientScope(deps.scope);
    const holds = new Set<Hold>();
    let inflight = 0;
    let unwritten = 0;
    let readEnded = false;
    let closed = false;
    const paused = (): boolean => inflight >= deps.maxInflightPerStream || unwritten > deps.maxBufferedBytesPerStream;
    // Answers the client does not take for server.slowReaderTimeoutMs cut the stream off (slow-reader.ts).
    const clock = new StreamReaderClock(http2StreamOf(call), deps, () => unwritten);
    const finish = (): void => {
      if (closed || inflight > 0) return;
      closed = true;
      this.open.delete(finish);
      call.end();
    };
    const gone = (): void => {
      closed = true;
      clock.stop();
      this.open.delete(finish);
      scope.close();
      for (const h of holds) h.release();
      holds.clear();
    };
    this.open.add(finish);
    call.once('cancelled', gone);
    call.once('close', gone);
    call.on('error', () => gone());
    call.on('end', () => {
      readEnded = true;
      finish();
    });
    call.on('data', (received: Received<ModelInferRequestMsg>) => {
      inflight++;
      if (paused()) call.pause();
      const id = received.message?.id ?? '';
      // Each request holds its own bytes (a hold per request), given back when its answer is written.
      const reqHold = deps.budget.hold();
      holds.add(reqHold);
      const done = (): void => {
        reqHold.release();
        holds.delete(reqHold);
      };
      // Each request of the stream is its own trace, parented by the stream's `traceparent` metadata.
      const trace = deps.tracing?.enabled ? new RequestTrace(deps.tracing, 'grpc', traceparentOf(call.metadata)) : undefined;
      runInfer(deps, received, scope, reqHold, trace).then(
        (answer) => {
          trace?.end();
          return { error_message: '', infer_response: answer };
        },
        (err: unknown) => {
          const e = toPerchError(err);
          trace?.end(e.code, e.message);
          // Triton answers a failed stream request with its id, so the client can match it.
          return { error_message: errorText(e), infer_response: { id, model_name: received.message?.model_name ?? '', model_version: received.message?.model_version ?? '' } };
        },
      ).then((msg) => {
        inflight--;
        if (closed) return done();
        const bytes = msg.infer_response && 'raw_output_contents' in msg.infer_response ? responseBytes(msg.infer_response) : 256;
        unwritten += bytes;
        call.write(msg, () => {
          unwritten -= bytes;
          done();
          clock.sent();
          if (!paused() && call.isPaused()) call.resume();
        });
        clock.check();
        if (!paused() && call.isPaused()) call.resume();
        if ((readEnded || this.stopping) && inflight === 0) finish();
      }, (err: unknown) => deps.log.error({ err }, 'ModelStreamInfer answer failed'));
    });
    if (this.stopping) finish();
  };
}
