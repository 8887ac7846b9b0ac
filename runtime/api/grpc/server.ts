// The gRPC API (docs/grpc.md): inference.GRPCInferenceService on server.grpcPort and/or
// server.grpcSocketPath. The gRPC library is loaded when this starts, never before (load.ts).
import { PerchError, toPerchError } from '../../base/errors.js';
import { prepareSocketPath, removeSocketFile, setSocketMode } from '../unix-socket.js';
import type { GrpcDeps } from './deps.js';
import { unaryHandlers } from './handlers.js';
import { codeLibraryStatuses } from './library-statuses.js';
import { loadGrpc, type LoadedProto, type MethodDefinition } from './load.js';
import type { Received } from './messages.js';
import { StreamSet } from './stream.js';
import type * as GrpcJs from '@grpc/grpc-js';

export interface GrpcListen {
  host: string;
  /** TCP port; null = no TCP listener. */
  port: number | null;
  /** Unix socket path; null = none. */
  socketPath: string | null;
  /** File mode of the socket file (server.socketMode). */
  socketMode: number;
}

export class GrpcApi {
  private server: GrpcJs.Server | null = null;
  private streams: StreamSet | null = null;
  private boundPort: number | null = null;
  private socketPath: string | null = null;

  constructor(private readonly deps: GrpcDeps) {}

  /** The TCP port bound (the real one when server.grpcPort is 0); null without TCP. */
  get port(): number | null {
    return this.boundPort;
  }

  async start(where: GrpcListen): Promise<void> {
    const proto = await loadGrpc();
    const { grpc } = proto;
    const server = new grpc.Server({
      'grpc.max_receive_message_length': this.deps.maxRequestBytes,
      // Requests in flight on one connection, as a WebSocket connection's maxInflight.
      'grpc.max_concurrent_streams': this.deps.maxInflightPerStream,
      // grpc-js's own statuses for a unary call without exactly one message, coded (library-statuses.ts).
      interceptors: [codeLibraryStatuses(grpc)],
    });
    const streams = new StreamSet(grpc, this.deps);
    server.addService(serviceDefinition(proto, this.deps), { ...unaryHandlers(grpc, this.deps), ModelStreamInfer: streams.handle });
    this.server = server;
    this.streams = streams;
    try {
      if (where.port !== null) {
        const hostPart = where.host.includes(':') ? `[${where.host}]` : where.host;
        this.boundPort = await bind(grpc, server, `${hostPart}:${where.port}`, `port ${where.port} on ${where.host} (server.grpcPort)`);
      }
      if (where.socketPath !== null) {
        await prepareSocketPath(where.socketPath, 'server.grpcSocketPath');
        await bind(grpc, server, `unix:${where.socketPath}`, `socket ${where.socketPath} (server.grpcSocketPath)`);
        this.socketPath = where.socketPath;
        setSocketMode(where.socketPath, where.socketMode, 'server.grpcSocketPath');
      }
    } catch (err) {
      server.forceShutdown();
      throw err;
    }
  }

  /** Ends streams once their requests are answered, lets unary calls finish, then closes (forced after `graceMs`). */
  async stop(graceMs: number): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = null;
    this.streams?.stop();
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        server.forceShutdown();
        resolve();
      }, graceMs);
      timer.unref();
      server.tryShutdown(() => {
        clearTimeout(timer);
        resolve();
      });
    });
    if (this.socketPath !== null) removeSocketFile(this.socketPath);
  }
}

/**
 * The service as grpc-js takes it, with a request decoder that sheds load before decoding:
 * when the client budget is spent, an inference is not decoded at all (the handler answers
 * PERCH_ERR_OVERLOADED), and a message of any RPC that is not valid protobuf is a coded error
 * rather than grpc-js' bare INTERNAL "Error deserializing request" (which ServerLive,
 * ServerMetadata and the other small RPCs answered, before any handler ran).
 */
function serviceDefinition(proto: LoadedProto, deps: GrpcDeps): GrpcJs.ServiceDefinition {
  const out: Record<string, MethodDefinition> = {};
  for (const [name, m] of Object.entries(proto.methods)) {
    const infer = name === 'ModelInfer' || name === 'ModelStreamInfer';
    const decode = m.requestDeserialize;
    out[name] = {
      ...m,
      requestDeserialize: (buf: Buffer): Received<unknown> => {
        if (infer && deps.budget.spent) return { wireBytes: buf.length, message: null };
        try {
          return { wireBytes: buf.length, message: decode(buf) };
        } catch (err) {
          return { wireBytes: buf.length, message: null, error: new PerchError('PERCH_ERR_INVALID_MESSAGE', `not a valid ${name} request: ${(err as Error).message}`) };
        }
      },
    };
  }
  return out as GrpcJs.ServiceDefinition;
}

function bind(grpc: typeof GrpcJs, server: GrpcJs.Server, address: string, what: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.bindAsync(address, grpc.ServerCredentials.createInsecure(), (err, port) => {
      if (!err) return resolve(port);
      const text = err.message;
      if (/EADDRINUSE/.test(text)) reject(new PerchError('PERCH_ERR_PORT_IN_USE', `${what} is already in use by another process`, { cause: err }));
      else reject(new PerchError('PERCH_ERR_LISTEN_FAILED', `cannot listen on ${what}: ${text}`, { cause: toPerchError(err) }));
    });
  });
}
