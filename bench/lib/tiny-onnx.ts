// A tiny valid ONNX model built in the bench (an Identity of one FP32 [1] tensor, about 100 bytes):
// what a fleet-scale rollout ships when the figure wanted is control-plane cost, not bulk bytes.
// Protobuf by hand (onnx.proto3: ModelProto, GraphProto, NodeProto, ValueInfoProto, TypeProto),
// so no ONNX tooling is needed; fleet-scale.ts loads it with onnxruntime-node once to prove it valid.

function varint(n: number): Buffer {
  const out: number[] = [];
  let v = n;
  while (v > 0x7f) {
    out.push((v & 0x7f) | 0x80);
    v = Math.floor(v / 128);
  }
  out.push(v);
  return Buffer.from(out);
}

/** Field `no` as wire type 0 (varint). */
function int(no: number, v: number): Buffer {
  return Buffer.concat([varint(no << 3), varint(v)]);
}

/** Field `no` as wire type 2 (length-delimited: a string or an embedded message). */
function bytes(no: number, v: Buffer | string): Buffer {
  const b = typeof v === 'string' ? Buffer.from(v, 'utf8') : v;
  return Buffer.concat([varint((no << 3) | 2), varint(b.length), b]);
}

/** ValueInfoProto{name, type: TypeProto{tensor_type: {elem_type FLOAT, shape [1]}}}. */
function tensorInfo(name: string): Buffer {
  const dim = bytes(1, int(1, 1)); // TensorShapeProto.dim { dim_value: 1 }
  const tensorType = Buffer.concat([int(1, 1), bytes(2, dim)]); // elem_type 1 = FLOAT, shape
  return Buffer.concat([bytes(1, name), bytes(2, bytes(1, tensorType))]);
}

/** y = Identity(x), opset 13, IR version 7. `tag` goes into the producer version, so each tag makes other bytes. */
export function tinyOnnxModel(tag = '1'): Buffer {
  const node = Buffer.concat([bytes(1, 'x'), bytes(2, 'y'), bytes(4, 'Identity')]);
  const graph = Buffer.concat([bytes(1, node), bytes(2, 'perch-bench'), bytes(11, tensorInfo('x')), bytes(12, tensorInfo('y'))]);
  const opset = Buffer.concat([bytes(1, ''), int(2, 13)]);
  return Buffer.concat([int(1, 7), bytes(2, 'perch-bench'), bytes(3, tag), bytes(7, graph), bytes(8, opset)]);
}
