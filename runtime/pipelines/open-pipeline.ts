// Builds the runners of pipeline models for the model registry (InstanceDeps.openPipeline).
import { PerchError } from '../base/errors.js';
import type { ModelConfigFile } from '../models/model-config.js';
import type { Executor } from '../sessions/executor.js';
import { PipelineExecutor, type PipelineDeps } from './pipeline-executor.js';

export function pipelineOpener(deps: PipelineDeps): (name: string, dir: string, file: ModelConfigFile) => Executor {
  return (name, dir, file) => {
    if (!file.pipeline || !file.inputs || !file.outputs) throw new PerchError('PERCH_ERR_MODEL_CONFIG_INVALID', `model '${name}' is not a pipeline`);
    return new PipelineExecutor(name, dir, file.pipeline, file.inputs, file.outputs, deps);
  };
}
