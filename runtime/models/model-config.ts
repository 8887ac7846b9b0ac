// model.json (docs/protocol.md section 1): validated strictly, every bad path reported at once.
import { z } from 'zod';
import { timerMs } from '../base/timer-ms.js';
import { sessionSchema } from '../sessions/session-config.js';
import { DATATYPES } from '../tensor/datatypes.js';
import { pipelineSchema } from './pipeline-config.js';

const positiveInt = z.number().int().min(1);

const tensorSpecSchema = z.strictObject({
  name: z.string().min(1),
  datatype: z.enum(DATATYPES),
  /** Every axis, batch axis included; -1 = any size. */
  dims: z.array(z.number().int().min(-1)),
  /** Axis along which requests are stacked (default 0); null = not batched. */
  batchAxis: z.number().int().min(0).nullable().optional(),
});

const versionPolicySchema = z.union([
  z.strictObject({ latest: positiveInt }),
  z.strictObject({ specific: z.array(positiveInt).min(1) }),
  z.strictObject({ all: z.literal(true) }),
]);

// The settings without their defaults: `models.overrides` (runtime config) takes these, each
// optional, so an override changes only the keys it names (docs/config.md, models.overrides).
const batchingFields = {
  /** How long the oldest queued request may wait for a fuller batch while an executor is free. */
  maxQueueDelayMs: z.number().min(0).max(10_000),
  /** Batch sizes that are dispatched at once when the queue holds exactly that many items. */
  preferredBatchSizes: z.array(positiveInt),
  /** Requests waiting (not running) per model version; beyond it: PERCH_ERR_QUEUE_FULL. */
  maxQueueSize: positiveInt,
  /**
   * Bytes of input tensors waiting per model version; beyond it: PERCH_ERR_QUEUE_FULL (a request
   * finding the queue empty is always taken). Bounds what a flood of large inputs queues, under
   * the client budget (docs/reliability.md "Where the memory goes").
   */
  maxQueueBytes: positiveInt,
  /**
   * Bytes of input tensors one batch may hold: a request that would take a batch over it waits
   * for the next one (a request larger than it runs alone). Unset: batches are bounded by
   * maxBatchSize only. For models with dynamic spatial axes, whose working memory grows with the
   * batch's pixels (docs/models.md "One batch's memory").
   */
  maxBatchBytes: positiveInt,
  /** Priorities run from 1 (highest) to priorityLevels. */
  priorityLevels: positiveInt.max(100),
  /** Priority of requests that do not give one. */
  defaultPriority: positiveInt.max(100),
};

const batchingSchema = z.strictObject({
  maxQueueDelayMs: batchingFields.maxQueueDelayMs.default(0),
  preferredBatchSizes: batchingFields.preferredBatchSizes.default([]),
  maxQueueSize: batchingFields.maxQueueSize.default(1024),
  maxQueueBytes: batchingFields.maxQueueBytes.default(32 * 1024 * 1024),
  maxBatchBytes: batchingFields.maxBatchBytes.optional(),
  priorityLevels: batchingFields.priorityLevels.default(10),
  defaultPriority: batchingFields.defaultPriority.default(5),
});

const cacheFields = {
  enabled: z.boolean(),
  /** Entry lifetime; unset = the store's cache.defaultTtlSeconds. */
  ttlSeconds: positiveInt,
};

/** The persistent result cache for this model (docs/protocol.md section 1: `cache`); the request parameter `cache` overrides `enabled`. */
const modelCacheSchema = z.strictObject({
  enabled: cacheFields.enabled.default(false),
  ttlSeconds: cacheFields.ttlSeconds.optional(),
});

/**
 * One model's entry of `models.overrides`: only the keys given, no defaults filled in (a
 * default here would silently reset what model.json says).
 */
export const modelOverridesSchema = z.strictObject({
  batching: z.strictObject(batchingFields).partial().optional(),
  cache: z.strictObject(cacheFields).partial().optional(),
});

/**
 * Stateful models (Triton's sequence batching): the runtime keeps each sequence's state tensors,
 * feeds them in, and stores the new ones the model outputs.
 */
const sequenceSchema = z.strictObject({
  state: z
    .array(z.strictObject({ input: z.string().min(1), output: z.string().min(1), init: z.literal('zeros').default('zeros') }))
    .min(1),
  /** A sequence with no request for this long is freed. */
  idleTimeoutMs: timerMs(1).default(60_000),
  /** Live sequences per model; one more start gets PERCH_ERR_SEQUENCE_LIMIT. */
  maxSequences: positiveInt.max(1_000_000).default(1024),
});

const jsonScalar = z.union([z.number(), z.string(), z.boolean()]);

/** Values for the warm-up inference, per input; false = no warm-up. */
const warmupSchema = z.union([
  z.literal(false),
  z.strictObject({
    inputs: z
      .record(z.string(), z.strictObject({ shape: z.array(z.number().int().min(0)).optional(), data: z.array(jsonScalar).optional() }))
      .default({}),
  }),
]);

/**
 * What makes batching settings contradict each other, or null. model.json is checked with it, and
 * so is model.json with models.overrides over it (overrides.ts): an override of one key can
 * contradict a key it does not name.
 */
export function batchingConflict(b: { defaultPriority: number; priorityLevels: number }): string | null {
  return b.defaultPriority <= b.priorityLevels ? null : `batching.defaultPriority ${b.defaultPriority} exceeds batching.priorityLevels ${b.priorityLevels}`;
}

export const modelConfigSchema = z
  .strictObject({
    name: z.string().min(1).optional(),
    maxBatchSize: z.number().int().min(0).max(4096).optional(),
    versionPolicy: versionPolicySchema.default({ latest: 1 }),
    inputs: z.array(tensorSpecSchema).optional(),
    outputs: z.array(tensorSpecSchema).optional(),
    batching: batchingSchema.prefault({}),
    session: sessionSchema.prefault({}),
    cache: modelCacheSchema.prefault({}),
    sequence: sequenceSchema.optional(),
    warmup: warmupSchema.default({ inputs: {} }),
    /**
     * 'startup' opens the sessions when the runtime starts; 'firstUse' on the model's first
     * request (or a pipeline's first call of it), so a large model costs no memory until used.
     */
    loading: z.enum(['startup', 'firstUse']).default('startup'),
    /** Steps instead of an ONNX file (docs/models.md, "Pipelines"). */
    pipeline: pipelineSchema.optional(),
  })
  .refine((c) => batchingConflict(c.batching) === null, {
    message: 'batching.defaultPriority must not exceed batching.priorityLevels',
    path: ['batching', 'defaultPriority'],
  })
  .refine((c) => !c.pipeline || (c.inputs !== undefined && c.outputs !== undefined && !c.sequence), {
    message: 'a pipeline lists its inputs and outputs, and is not a sequence model',
    path: ['pipeline'],
  });

export type ModelConfigFile = z.infer<typeof modelConfigSchema>;
export type TensorSpecInput = z.infer<typeof tensorSpecSchema>;
export type VersionPolicy = z.infer<typeof versionPolicySchema>;
export type BatchingConfig = z.infer<typeof batchingSchema>;
export type ModelCacheConfig = z.infer<typeof modelCacheSchema>;
export type SequenceConfig = z.infer<typeof sequenceSchema>;
export type ModelOverrides = z.infer<typeof modelOverridesSchema>;
export type WarmupConfig = z.infer<typeof warmupSchema>;
