// What each pipeline step reads and writes (runtime/models/pipeline-config.ts), by name and in
// order. Apart from run-step.ts so that the main thread, which only routes values, never loads
// the image library: that happens in the processing threads.
import type { PipelineStep } from '../models/pipeline-config.js';

/** Steps a processing thread runs (the others call models, on the main thread). */
export type ProcessingStep = Exclude<PipelineStep, { op: 'model' } | { op: 'vad.segments' }>;

export function isProcessingStep(s: PipelineStep): s is ProcessingStep {
  return s.op !== 'model' && s.op !== 'vad.segments';
}

/** The values a step reads, in the order runStep takes them. */
export function stepInputs(s: PipelineStep): string[] {
  switch (s.op) {
    case 'image.decode': case 'image.tensor': case 'ctc.greedy': case 'classify.topk': case 'audio.decode': case 'vad.segments':
      return [s.from];
    case 'image.crops': return s.rotate180 ? [s.from, s.boxes, s.rotate180.from] : [s.from, s.boxes];
    case 'text.regions': return [s.from, s.image];
    case 'blazeface.decode': return [...s.scores, ...s.regressors, s.image];
    case 'model': return Object.values(s.inputs);
  }
}

/** The values a step writes, in the order runStep returns them. */
export function stepOutputs(s: PipelineStep): string[] {
  switch (s.op) {
    case 'image.decode': case 'image.tensor': case 'image.crops': case 'audio.decode': case 'vad.segments':
      return [s.to];
    case 'text.regions': return [s.to, s.scores];
    case 'ctc.greedy': return [s.to, s.confidence];
    case 'classify.topk': return [s.to, s.scores];
    case 'blazeface.decode': return [s.to, s.keypoints, s.confidences];
    case 'model': return Object.values(s.outputs);
  }
}
