// The `session` part of model.json (docs/models.md): how onnxruntime sessions of a model are
// opened and where they run. Sessions take only this; the rest of model.json is models/ business.
import { z } from 'zod';

const positiveInt = z.number().int().min(1);

export const EXECUTORS = ['worker', 'inline'] as const;

export const sessionSchema = z.strictObject({
  intraOpNumThreads: positiveInt.max(64).default(1),
  interOpNumThreads: positiveInt.max(64).default(1),
  executionProviders: z.array(z.string().min(1)).min(1).default(['cpu']),
  graphOptimizationLevel: z.enum(['disabled', 'basic', 'extended', 'all']).default('all'),
  /** Sessions run in parallel (each its own copy of the model): concurrent batches per version. */
  instances: positiveInt.max(16).default(1),
  /**
   * Sessions opened when the version loads (at most `instances`); the others open the first
   * time every open one is busy (docs/models.md). Unset: all of them at load.
   */
  startInstances: positiveInt.max(16).optional(),
  /**
   * 'worker' runs the session on a worker thread so the event loop stays free during long
   * batches; 'inline' runs it on the main thread, saving the thread hop (~0.1 ms) for tiny models.
   */
  executor: z.enum(EXECUTORS).default('worker'),
});

export type SessionConfig = z.infer<typeof sessionSchema>;
