// Loads the gRPC library and proto/inference.proto on first use only: a device that serves no
// gRPC (server.grpcPort and server.grpcSocketPath unset, the default) never loads @grpc/grpc-js
// and protobufjs, and keeps their memory (docs/benchmarks.md "gRPC idle memory").
import { join } from 'node:path';
import type * as GrpcJs from '@grpc/grpc-js';
import { packageRoot } from '../../base/package-root.js';

export type Grpc = typeof GrpcJs;

/** One RPC of the service as grpc-js takes it (path, streaming, codecs). */
export type MethodDefinition = GrpcJs.MethodDefinition<unknown, unknown>;

export interface LoadedProto {
  grpc: Grpc;
  /** GRPCInferenceService's methods by name (ServerLive, ..., ModelStreamInfer). */
  methods: Record<string, MethodDefinition>;
}

/** The proto file Perch serves; clients can generate their stubs from it too. */
export function protoFile(): string {
  return join(packageRoot(), 'proto', 'inference.proto');
}

/**
 * Loader options: field names as in the proto (snake_case), 64-bit integers as decimal strings
 * (exact: INT64 data and ids past 2^53), bytes as Buffers, absent fields as their defaults, and
 * the oneof of InferParameter named.
 */
export const LOADER_OPTIONS = { keepCase: true, longs: String, enums: String, bytes: Buffer, defaults: true, oneofs: true } as const;

let loaded: Promise<LoadedProto> | null = null;

export function loadGrpc(): Promise<LoadedProto> {
  loaded ??= (async () => {
    const [grpc, loader] = await Promise.all([import('@grpc/grpc-js'), import('@grpc/proto-loader')]);
    const pkg = loader.loadSync(protoFile(), LOADER_OPTIONS);
    const methods = pkg['inference.GRPCInferenceService'] as unknown as Record<string, MethodDefinition>;
    return { grpc, methods };
  })();
  return loaded;
}
