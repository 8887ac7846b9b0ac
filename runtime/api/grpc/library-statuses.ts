// Statuses grpc-js sends itself, without a `perch-error-code` (docs/grpc.md "Errors"). Those of
// its call layer go through the server's interceptors on their way out, and get the code here:
// a unary call whose stream ends without a whole request message (nothing sent, or a length
// prefix promising more bytes than came before the end) or carries a second one was answered
// UNIMPLEMENTED "Received no request message for server streaming method", with no code and a
// wrong name for the fault. Those sent from inside grpc-js's message reader, before any
// interceptor or handler sees the call (a message over server.maxRequestBytes, a compressed
// message that does not inflate, an unsupported grpc-encoding), cannot be reached from here:
// docs/grpc.md lists them.
import type * as GrpcJs from '@grpc/grpc-js';
import { PerchError } from '../../base/errors.js';
import { toStatus } from './handlers.js';

/** grpc-js's details for a unary call without exactly one request message (server.js handleUnary). */
const NOT_ONE_MESSAGE = /^Received (no|a second) request message for /;

export function codeLibraryStatuses(grpc: typeof GrpcJs): GrpcJs.ServerInterceptor {
  return (_method, call) =>
    new grpc.ServerInterceptingCall(call, {
      sendStatus(status, next) {
        if (status.code !== grpc.status.OK && NOT_ONE_MESSAGE.test(status.details ?? '')) {
          const which = status.details?.startsWith('Received no') ? 'no whole request message (none sent, or the stream ended inside one)' : 'a second request message';
          const e = new PerchError('PERCH_ERR_INVALID_MESSAGE', `a unary call carries exactly one request message; this one had ${which}`);
          const coded = toStatus(grpc, e);
          next({ code: coded.code ?? status.code, details: coded.details ?? status.details, metadata: coded.metadata ?? null });
          return;
        }
        next(status);
      },
    });
}
