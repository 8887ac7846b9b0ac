// The port through which a pipeline calls another model of the repository. The composition
// root (runtime/runtime.ts) gives one that submits to that model's own batcher, so the calls of
// many concurrent pipeline runs batch together (docs/models.md, "Pipelines").
import type { Tensor } from '../tensor/tensor.js';

export type ModelCaller = (model: string, inputs: Tensor[]) => Promise<Tensor[]>;
