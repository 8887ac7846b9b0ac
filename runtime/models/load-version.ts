// Opening one version of a model: its sessions (executors), its config resolved against what the
// ONNX file says of itself, a warm-up run, and the file's digest. Closes every session it opened
// when any step fails. Batching and serving the version is batching/model-instance.ts.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import type { Clock } from '../base/clock.js';
import { PerchError } from '../base/errors.js';
import type { Executor } from '../sessions/executor.js';
import { createInlineExecutor } from '../sessions/inline-executor.js';
import { createOnDemandExecutor } from '../sessions/on-demand-executor.js';
import type { SessionConfig } from '../sessions/session-config.js';
import { createWorkerExecutor } from '../sessions/worker-executor.js';
import type { ModelConfigFile, ModelOverrides } from './model-config.js';
import { withOverrides } from './overrides.js';
import { resolveModelConfig, type ResolvedModelConfig } from './resolve-config.js';
import { warmUp } from './warmup.js';

export interface LoadDeps {
  clock: Clock;
  /** Opens session number `index` of a version (tests swap in sessions that crash). */
  createExecutor?: (path: string, cfg: SessionConfig, index: number) => Promise<Executor>;
}

/** One version, opened and warmed up. */
export interface LoadedVersion {
  config: ResolvedModelConfig;
  /** SHA-256 (hex) of the model file. */
  sha256: string;
  executors: Executor[];
  warmedUp: boolean;
}

async function createExecutor(path: string, cfg: SessionConfig, deps: LoadDeps, index: number): Promise<Executor> {
  try {
    if (deps.createExecutor) return await deps.createExecutor(path, cfg, index);
    return cfg.executor === 'inline' ? await createInlineExecutor(path, cfg) : await createWorkerExecutor(path, cfg, { clock: deps.clock });
  } catch (err) {
    throw new PerchError('PERCH_ERR_MODEL_LOAD_FAILED', `${path}: ${(err as Error).message}`, { cause: err });
  }
}

/**
 * Opens the sessions, checks model.json against the file, warms up. `file` is model.json as
 * written; `overrides` (config models.overrides) go over it.
 */
export async function loadVersion(name: string, path: string, file: ModelConfigFile, deps: LoadDeps, overrides?: ModelOverrides): Promise<LoadedVersion> {
  const executors: Executor[] = [];
  const sha256 = await fileSha256(path);
  try {
    const { instances, startInstances } = file.session;
    const atLoad = Math.min(startInstances ?? instances, instances);
    for (let i = 0; i < atLoad; i++) executors.push(await createExecutor(path, file.session, deps, i));
    const first = executors[0] as Executor;
    const config = resolveModelConfig(name, withOverrides(file, overrides), first);
    const warmedUp = await warmUp(config, file.warmup, first);
    // The rest open when every open session is busy (session.startInstances), warmed up before
    // they take a batch.
    for (let i = atLoad; i < instances; i++) {
      const open = async (): Promise<Executor> => {
        const e = await createExecutor(path, file.session, deps, i);
        try {
          await warmUp(config, file.warmup, e);
        } catch (err) {
          await e.close();
          throw err;
        }
        return e;
      };
      executors.push(createOnDemandExecutor(first, open, deps.clock));
    }
    return { config, sha256, executors, warmedUp };
  } catch (err) {
    await Promise.allSettled(executors.map((e) => e.close()));
    throw err;
  }
}

function fileSha256(path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const h = createHash('sha256');
    createReadStream(path).on('data', (c) => h.update(c)).on('end', () => resolve(h.digest('hex'))).on('error', reject);
  });
}
