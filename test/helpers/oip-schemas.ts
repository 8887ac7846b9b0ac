// Response schemas of the Open Inference Protocol's REST API (KServe v2 data plane), written for
// Perch's tests from the protocol's OpenAPI document (its component schemas: server and model
// metadata, tensors, inference response, error objects) and its text (health and ready bodies).
// Strict where the document requires a field, open where it allows more (extensions like
// Triton's binary data add parameters; Perch adds `code` to errors and `max_batch_size`).
import { z } from 'zod';

const parameters = z.record(z.string(), z.unknown());

/** tensor_data: nested arrays of numbers, strings or booleans. */
const tensorData: z.ZodType<unknown[]> = z.lazy(() => z.array(z.union([tensorData, z.number(), z.string(), z.boolean()])));

export const serverMetadata = z.object({ name: z.string(), version: z.string(), extensions: z.array(z.string()) });

export const metadataTensor = z.object({ name: z.string(), datatype: z.string(), shape: z.array(z.number().int()) });

export const modelMetadata = z.object({
  name: z.string(),
  versions: z.array(z.string()).optional(),
  platform: z.string(),
  inputs: z.array(metadataTensor).optional(),
  outputs: z.array(metadataTensor).optional(),
});

export const responseOutput = z.object({
  name: z.string(),
  shape: z.array(z.number().int()),
  datatype: z.string(),
  parameters: parameters.optional(),
  data: tensorData,
});

/** An output sent as binary data (Triton's binary tensor extension): binary_data_size instead of data. */
export const binaryResponseOutput = responseOutput.omit({ data: true }).extend({
  parameters: z.object({ binary_data_size: z.number().int().min(0) }).catchall(z.unknown()),
});

export const inferenceResponse = z.object({
  model_name: z.string(),
  model_version: z.string().optional(),
  id: z.string().optional(),
  parameters: parameters.optional(),
  outputs: z.array(responseOutput),
});

export const errorResponse = z.object({ error: z.string() });

/** Health and model-ready bodies as the protocol's text gives them. */
export const liveResponse = z.object({ live: z.boolean() });
export const readyResponse = z.object({ ready: z.boolean() });

/** Issues of `value` against `schema`, as strings ([] when it conforms). */
export function conformance(schema: z.ZodType, value: unknown): string[] {
  const r = schema.safeParse(value);
  return r.success ? [] : r.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`);
}
