// Open Inference Protocol request bodies (docs/protocol.md sections 2-3), shared by HTTP and WebSocket.
// `data` is left unknown here: json-codec checks it element by element against the datatype.
import { z } from 'zod';
import { DATATYPES } from '../tensor/datatypes.js';

const parameters = z.record(z.string(), z.unknown());

export const requestTensorSchema = z.object({
  name: z.string().min(1),
  shape: z.array(z.number().int().min(0)),
  datatype: z.enum(DATATYPES),
  parameters: z.object({ binary_data_size: z.number().int().min(0).optional() }).catchall(z.unknown()).optional(),
  data: z.unknown().optional(),
});

export const requestedOutputSchema = z.object({
  name: z.string().min(1),
  parameters: z.object({ binary_data: z.boolean().optional() }).catchall(z.unknown()).optional(),
});

export const inferBodySchema = z.object({
  id: z.string().optional(),
  parameters: parameters.optional(),
  inputs: z.array(requestTensorSchema).min(1),
  outputs: z.array(requestedOutputSchema).optional(),
});

export type RequestTensor = z.infer<typeof requestTensorSchema>;
export type InferBody = z.infer<typeof inferBodySchema>;
