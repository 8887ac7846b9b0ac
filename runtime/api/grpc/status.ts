// PERCH_ERR_* codes as gRPC statuses (docs/grpc.md "Errors"). The gRPC status follows the HTTP
// status of the code (runtime/errors.ts), the way gRPC's own HTTP mapping pairs them; the
// PERCH_ERR_* code itself travels in the details ("PERCH_ERR_...: message") and in the
// trailing metadata `perch-error-code`, so a client can tell one 400 from another.
import { ERROR_CODES, type ErrorCode, type PerchError } from '../../base/errors.js';

/** grpc/doc/statuscodes.md numbers (the ones used here). Numbers, so this file loads no gRPC library. */
export const GRPC_STATUS = {
  OK: 0,
  CANCELLED: 1,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  UNAUTHENTICATED: 16,
} as const;

export type GrpcStatusName = keyof typeof GRPC_STATUS;

/** HTTP status of a code -> gRPC status. Every status in ERROR_CODES is here (test/grpc/status.test.ts). */
export const GRPC_STATUS_OF_HTTP: Readonly<Record<number, GrpcStatusName>> = {
  400: 'INVALID_ARGUMENT',
  401: 'UNAUTHENTICATED',
  403: 'PERMISSION_DENIED',
  404: 'NOT_FOUND',
  405: 'UNIMPLEMENTED',
  408: 'DEADLINE_EXCEEDED',
  409: 'FAILED_PRECONDITION',
  413: 'RESOURCE_EXHAUSTED',
  415: 'INVALID_ARGUMENT',
  416: 'OUT_OF_RANGE',
  417: 'FAILED_PRECONDITION',
  422: 'INVALID_ARGUMENT',
  429: 'RESOURCE_EXHAUSTED',
  499: 'CANCELLED',
  500: 'INTERNAL',
  502: 'UNAVAILABLE',
  503: 'UNAVAILABLE',
  504: 'DEADLINE_EXCEEDED',
  507: 'RESOURCE_EXHAUSTED',
};

export function grpcStatusOf(code: ErrorCode): number {
  return GRPC_STATUS[GRPC_STATUS_OF_HTTP[ERROR_CODES[code].status] ?? 'INTERNAL'];
}

/** The text a client sees: the code first, as in ModelStreamInferResponse.error_message. */
export function errorText(e: PerchError): string {
  return `${e.code}: ${e.message}`;
}
