// A lean gRPC load generator for the overhead benchmark: ModelInferRequests are serialized once
// before timing (as the HTTP/WS frames are: bench/lib/clients.ts), sent with grpc-js's generic
// unary call, and answers decoded with the proto's own codec.
import * as grpc from '@grpc/grpc-js';
import * as loader from '@grpc/proto-loader';
import { encodeBinaryData } from '../../runtime/tensor/binary-codec.js';
import type { Tensor } from '../../runtime/tensor/tensor.js';
import { PROTO } from '../../test/grpc/client.js';
import type { Answer } from './clients.js';

const PATH = '/inference.GRPCInferenceService/ModelInfer';
const method = loader.loadSync(PROTO, { keepCase: true, longs: String, defaults: true })['inference.GRPCInferenceService'] as unknown as Record<string, grpc.MethodDefinition<unknown, unknown>>;
const infer = method.ModelInfer as grpc.MethodDefinition<unknown, unknown>;

/** A ModelInferRequest with raw_input_contents, serialized. */
export function grpcRequest(model: string, inputs: readonly Tensor[]): Buffer {
  return infer.requestSerialize({
    model_name: model,
    inputs: inputs.map((t) => ({ name: t.name, datatype: t.datatype, shape: t.shape })),
    raw_input_contents: inputs.map((t) => Buffer.from(encodeBinaryData(t))),
  });
}

interface Response {
  outputs: Array<{ name: string; datatype: string; shape: string[] }>;
  raw_output_contents: Buffer[];
}

export class BenchGrpc {
  private readonly client: grpc.Client;

  /** `address`: host:port, or unix:/path. */
  constructor(address: string) {
    this.client = new grpc.Client(address, grpc.credentials.createInsecure());
  }

  infer(request: Buffer): Promise<Answer> {
    return new Promise((resolve, reject) => {
      this.client.makeUnaryRequest(PATH, (b: Buffer) => b, (b: Buffer) => infer.responseDeserialize(b) as Response, request, (err, res) => {
        if (err || !res) return reject(err ?? new Error('no answer'));
        // As an OIP binary answer, so bench/lib/clients.ts answerOutputs reads it.
        const outputs = res.outputs.map((o, i) => ({ name: o.name, datatype: o.datatype, shape: o.shape.map(Number), parameters: { binary_data_size: (res.raw_output_contents[i] as Buffer).length } }));
        resolve({ header: { outputs }, binary: Buffer.concat(res.raw_output_contents) });
      });
    });
  }

  close(): void {
    this.client.close();
  }
}
