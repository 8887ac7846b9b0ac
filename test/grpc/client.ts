// A gRPC client built the way a user builds one: from proto/inference.proto, loaded at run
// time with @grpc/proto-loader, through @grpc/grpc-js's generic client. Nothing of Perch's
// server code is used, so a wrong field number or name on either side shows up as a failure.
import * as grpc from '@grpc/grpc-js';
import * as loader from '@grpc/proto-loader';
import { join } from 'node:path';
import { REPO_ROOT } from '../helpers/paths.js';
import { elementCount, type Tensor } from '../../runtime/tensor/tensor.js';

export const PROTO = join(REPO_ROOT, 'proto', 'inference.proto');

type Ctor = new (address: string, creds: grpc.ChannelCredentials, options?: grpc.ChannelOptions) => grpc.Client;
const pkg = grpc.loadPackageDefinition(loader.loadSync(PROTO, { keepCase: true, longs: String, defaults: true, oneofs: true })) as unknown as {
  inference: { GRPCInferenceService: Ctor };
};

export interface GrpcFailure {
  code: number;
  details: string;
  perchCode: string | undefined;
}

/** Unary calls as promises; `token` goes into every call's metadata. */
export class InferenceClient {
  readonly raw: grpc.Client & Record<string, (...args: unknown[]) => unknown>;

  /** `scheme`: the Authorization scheme as the client writes it (RFC 9110: any case). */
  constructor(address: string, private readonly token: string | null = null, options: grpc.ChannelOptions = {}, private readonly scheme = 'Bearer') {
    this.raw = new pkg.inference.GRPCInferenceService(address, grpc.credentials.createInsecure(), options) as InferenceClient['raw'];
  }

  metadata(): grpc.Metadata {
    const m = new grpc.Metadata();
    if (this.token !== null) m.set('authorization', `${this.scheme} ${this.token}`);
    return m;
  }

  call<T = Record<string, unknown>>(method: string, request: unknown): Promise<T> {
    return new Promise((resolve, reject) => {
      const fn = this.raw[method] as (req: unknown, md: grpc.Metadata, cb: (err: grpc.ServiceError | null, res: T) => void) => void;
      fn.call(this.raw, request, this.metadata(), (err, res) => (err ? reject(err) : resolve(res)));
    });
  }

  /** The call's failure as code + details + the perch-error-code trailer; throws if it succeeded. */
  async failure(method: string, request: unknown): Promise<GrpcFailure> {
    try {
      await this.call(method, request);
    } catch (err) {
      const e = err as grpc.ServiceError;
      return { code: e.code, details: e.details, perchCode: e.metadata?.get('perch-error-code')[0] as string | undefined };
    }
    throw new Error(`${method} succeeded, a failure was expected`);
  }

  stream(): grpc.ClientDuplexStream<unknown, StreamAnswer> {
    const fn = this.raw.ModelStreamInfer as unknown as (md: grpc.Metadata) => grpc.ClientDuplexStream<unknown, StreamAnswer>;
    return fn.call(this.raw, this.metadata());
  }

  close(): void {
    this.raw.close();
  }
}

export interface InferAnswer {
  model_name: string;
  model_version: string;
  id: string;
  parameters: Record<string, { bool_param?: boolean }>;
  outputs: Array<{ name: string; datatype: string; shape: string[] }>;
  raw_output_contents: Buffer[];
}

export interface StreamAnswer {
  error_message: string;
  infer_response: InferAnswer | null;
}

/** Tensor bytes as raw_input_contents carries them (little-endian, row-major). */
export function rawBytes(t: Tensor): Buffer {
  const d = t.data as ArrayBufferView;
  return Buffer.from(d.buffer, d.byteOffset, d.byteLength);
}

/** A ModelInferRequest with every input in raw_input_contents. */
export function rawRequest(model: string, inputs: Tensor[], extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    model_name: model,
    inputs: inputs.map((t) => ({ name: t.name, datatype: t.datatype, shape: t.shape })),
    raw_input_contents: inputs.map(rawBytes),
    ...extra,
  };
}

/** The same request with typed `contents` (FP32 -> fp32_contents, INT64 -> int64_contents as strings). */
export function typedRequest(model: string, inputs: Tensor[]): Record<string, unknown> {
  return {
    model_name: model,
    inputs: inputs.map((t) => {
      const contents = t.datatype === 'FP32'
        ? { fp32_contents: Array.from(t.data as Float32Array) }
        : t.datatype === 'INT64'
          ? { int64_contents: Array.from(t.data as BigInt64Array, String) }
          : null;
      if (!contents) throw new Error(`typedRequest: no test encoding for ${t.datatype}`);
      return { name: t.name, datatype: t.datatype, shape: t.shape, contents };
    }),
  };
}

/** raw_output_contents -> tensors (FP32 only: the test models answer FP32). */
export function answerTensors(a: InferAnswer): Tensor[] {
  return a.outputs.map((o, i) => {
    const b = a.raw_output_contents[i] as Buffer;
    const copy = new Uint8Array(b).slice();
    const shape = o.shape.map(Number);
    if (o.datatype !== 'FP32') throw new Error(`answerTensors: ${o.datatype}`);
    const data = new Float32Array(copy.buffer, 0, elementCount(shape));
    return { name: o.name, datatype: 'FP32', shape, data };
  });
}
