import type { PerchError } from '../../base/errors.js';

// The shapes of the gRPC messages as the proto loader hands them over and takes them back
// (runtime/api/grpc/load.ts options: keepCase, longs as strings, bytes as Buffers, defaults,
// oneofs). Field names are those of inference.proto.

export interface InferParameterMsg {
  bool_param?: boolean;
  int64_param?: string;
  string_param?: string;
  double_param?: number;
  uint64_param?: string;
  /** Which of the oneof's fields is set (proto-loader `oneofs: true`). */
  parameter_choice?: string;
}

export type ParameterMap = Record<string, InferParameterMsg>;

export interface TensorContentsMsg {
  bool_contents: boolean[];
  int_contents: number[];
  int64_contents: string[];
  uint_contents: number[];
  uint64_contents: string[];
  fp32_contents: number[];
  fp64_contents: number[];
  bytes_contents: Buffer[];
}

export interface InferInputTensorMsg {
  name: string;
  datatype: string;
  shape: string[];
  parameters: ParameterMap;
  contents: TensorContentsMsg | null;
}

export interface ModelInferRequestMsg {
  model_name: string;
  model_version: string;
  id: string;
  parameters: ParameterMap;
  inputs: InferInputTensorMsg[];
  outputs: Array<{ name: string; parameters: ParameterMap }>;
  raw_input_contents: Buffer[];
}

export interface ModelInferResponseMsg {
  model_name: string;
  model_version: string;
  id: string;
  parameters: ParameterMap;
  outputs: Array<{ name: string; datatype: string; shape: number[]; parameters: ParameterMap }>;
  raw_output_contents: Uint8Array[];
}

/** What the request deserializer hands the handlers: the message, or why it was not decoded. */
export interface Received<T> {
  /** The message could not be decoded (not a valid protobuf message of this type). */
  error?: PerchError;
  /** Bytes of the message on the wire (charged to the client budget while it is handled). */
  wireBytes: number;
  /** null when the message was not decoded: the client budget was spent (PERCH_ERR_OVERLOADED). */
  message: T | null;
}
