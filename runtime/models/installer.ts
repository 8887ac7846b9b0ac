// Installing, rolling back and removing model versions at run time (for cloud updates). The
// repository folder stays the source of truth, so a reboot serves what was installed:
//   stage:  copy the verified file to <model>/.staging-<v>/model.onnx (+ model.json), fsync
//   load:   rename to <model>/<v>/ and reload the model (sessions open, warm up, swap)
// If the new version does not come up, its folder is removed, the old model.json restored and
// the model reloaded: the old version never stopped serving. The previous version stays on disk
// (and only it: older ones are deleted) so `rollback` can go back to it.
import { copyFileSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fsyncPath, writeFileDurably } from '../base/durable-file.js';
import { PerchError } from '../base/errors.js';
import type { Logger } from '../base/log.js';
import type { ModelRegistry } from './registry.js';
import { CONFIG_FILE, INSTALLABLE_MODEL_NAME, listModelNames, listVersions, MODEL_FILE, parseModelConfig } from './repository.js';

/** A model version as the device serves it (for state/reported). */
export interface ServedModel {
  name: string;
  version: number;
  /** SHA-256 (hex) of the served model.onnx. */
  sha256: string;
  /** The version this one replaced, kept on disk for rollback (null when none). */
  previousVersion: number | null;
}

export class ModelInstaller {
  constructor(
    private readonly repository: string,
    private readonly registry: ModelRegistry,
    private readonly log: Logger,
  ) {}

  served(): ServedModel[] {
    return this.registry.instances().map((i) => ({ name: i.name, version: i.version, sha256: i.sha256, previousVersion: this.previousOf(i.name, i.version) }));
  }

  async install(name: string, version: number, file: string, modelJson?: unknown): Promise<ServedModel> {
    if (!INSTALLABLE_MODEL_NAME.test(name)) throw new PerchError('PERCH_ERR_MODEL_CONFIG_INVALID', `'${name}' is not a usable model name`);
    const dir = join(this.repository, name);
    const configPath = join(dir, CONFIG_FILE);
    if (modelJson !== undefined) parseModelConfig(name, modelJson); // refuse a bad model.json before touching anything
    mkdirSync(dir, { recursive: true });
    const staging = join(dir, `.staging-${version}`);
    rmSync(staging, { recursive: true, force: true });
    mkdirSync(staging);
    try {
      copyFileSync(file, join(staging, MODEL_FILE));
      fsyncPath(join(staging, MODEL_FILE));
    } catch (err) {
      // A disk that filled during the copy gets its space back; the old version serves on.
      rmSync(staging, { recursive: true, force: true });
      throw err;
    }
    const oldConfig = existsSync(configPath) ? readFileSync(configPath) : null;
    const target = join(dir, String(version));
    rmSync(target, { recursive: true, force: true });
    renameSync(staging, target);
    // Whole or not at all: a model.json cut short by a power cut would keep the model from loading.
    if (modelJson !== undefined) writeFileDurably(configPath, JSON.stringify(modelJson, null, 2));

    const status = await this.registry.load(name);
    const failure = status.versions.find((v) => v.version === version && v.state === 'failed')?.error ?? status.error;
    if (failure || !status.served.includes(version)) {
      // Undo: the old version never stopped serving; reload to clear the failed version.
      rmSync(target, { recursive: true, force: true });
      if (modelJson !== undefined) {
        if (oldConfig) writeFileDurably(configPath, oldConfig);
        else rmSync(configPath, { force: true });
      }
      if (listVersions(this.repository, name).length > 0) await this.registry.load(name);
      else await this.registry.unload(name).catch(() => undefined);
      throw new PerchError((failure?.code as PerchError['code']) ?? 'PERCH_ERR_MODEL_LOAD_FAILED', failure?.message ?? `version ${version} of '${name}' did not come up`);
    }
    this.pruneOlder(name, version);
    this.log.info({ model: name, version }, 'model version installed');
    return this.describe(name, version);
  }

  /** Serves the previous version again and deletes the current one. */
  async rollback(name: string): Promise<ServedModel> {
    const current = this.registry.statusOf(name).served.at(-1);
    const previous = current === undefined ? null : this.previousOf(name, current);
    if (current === undefined || previous === null) throw new PerchError('PERCH_ERR_NO_PREVIOUS_VERSION', `model '${name}' keeps no previous version to roll back to`);
    const gone = join(this.repository, name, `.rolled-back-${current}`);
    rmSync(gone, { recursive: true, force: true });
    renameSync(join(this.repository, name, String(current)), gone);
    const status = await this.registry.load(name);
    if (!status.served.includes(previous)) {
      renameSync(gone, join(this.repository, name, String(current))); // previous does not load: keep what serves
      await this.registry.load(name);
      throw new PerchError('PERCH_ERR_MODEL_LOAD_FAILED', `previous version ${previous} of '${name}' does not load`);
    }
    rmSync(gone, { recursive: true, force: true });
    this.log.warn({ model: name, from: current, to: previous }, 'model rolled back');
    return this.describe(name, previous);
  }

  /** Stops serving a model and deletes its folder. */
  async remove(name: string): Promise<void> {
    if (this.registry.has(name)) await this.registry.unload(name);
    if (listModelNames(this.repository).includes(name)) rmSync(join(this.repository, name), { recursive: true, force: true });
  }

  private describe(name: string, version: number): ServedModel {
    const inst = this.registry.resolve(name, version);
    return { name, version, sha256: inst.sha256, previousVersion: this.previousOf(name, version) };
  }

  private previousOf(name: string, version: number): number | null {
    const older = listVersions(this.repository, name).filter((v) => v < version);
    return older.at(-1) ?? null;
  }

  /** Keeps the new version and the one before it; older ones only take disk space. */
  private pruneOlder(name: string, version: number): void {
    const previous = this.previousOf(name, version);
    for (const v of listVersions(this.repository, name)) {
      if (v !== version && v !== previous && !this.registry.statusOf(name).served.includes(v)) {
        rmSync(join(this.repository, name, String(v)), { recursive: true, force: true });
      }
    }
  }
}
