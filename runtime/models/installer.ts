// Installing, rolling back and removing model versions at run time (for cloud updates). The
// repository folder stays the source of truth, so a reboot serves what was installed:
//   stage:  copy the verified file to <model>/.staging-<v>/model.onnx, with the new model.json
//           (install.model.json) and the one it replaces (previous.model.json), fsync
//   commit: rename to <model>/<v>/: the one step that counts after a power cut
//           (install-journal.ts; docs/models.md, "Installs and power cuts")
//   config: install.model.json becomes <model>/model.json
//   load:   reload the model (sessions open, warm up, swap)
// If the new version does not come up, its folder is renamed away, the old model.json restored
// and the model reloaded: the old version never stopped serving. The previous version stays on
// disk (and only it: older ones are deleted) so `rollback` can go back to it, with the
// model.json it served with.
import { copyFileSync, existsSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fsyncPath, writeFileDurably } from '../base/durable-file.js';
import { PerchError } from '../base/errors.js';
import type { Logger } from '../base/log.js';
import {
  currentModelConfig, finishInterrupted, INSTALL_CONFIG, PREVIOUS_CONFIG, promoteInstallConfig, putBackReplaced, REPLACED_PREFIX, restorePreviousConfig,
} from './install-journal.js';
import type { ModelRegistry } from './registry.js';
import { INSTALLABLE_MODEL_NAME, listModelNames, listVersions, MODEL_FILE, parseModelConfig } from './repository.js';

/** A model version as the device serves it (for state/reported). */
export interface ServedModel {
  name: string;
  version: number;
  /** SHA-256 (hex) of the served model.onnx. */
  sha256: string;
  /** The version this one replaced, kept on disk for rollback (null when none). */
  previousVersion: number | null;
}

/** The points between the steps of an install, undo or rollback (InstallerHooks.step). */
export type InstallStep = 'staged' | 'replaced' | 'renamed' | 'configured' | 'undo-renamed' | 'rollback-renamed' | 'rollback-configured';

export interface InstallerHooks {
  /** Called between two steps: a test stops the process there, as a power cut would (test/models/install-power-cut.test.ts). */
  step?(name: InstallStep): void | Promise<void>;
}

export class ModelInstaller {
  constructor(
    private readonly repository: string,
    private readonly registry: ModelRegistry,
    private readonly log: Logger,
    /** Test seam (a test sets `step`); nothing in the runtime sets it. */
    readonly hooks: InstallerHooks = {},
  ) {}

  /** At start, before models load: finishes installs, undos and rollbacks a power cut interrupted. */
  finishInterrupted(): void {
    finishInterrupted(this.repository, this.log);
  }

  served(): ServedModel[] {
    return this.registry.instances().map((i) => ({ name: i.name, version: i.version, sha256: i.sha256, previousVersion: this.previousOf(i.name, i.version) }));
  }

  async install(name: string, version: number, file: string, modelJson?: unknown): Promise<ServedModel> {
    if (!INSTALLABLE_MODEL_NAME.test(name)) throw new PerchError('PERCH_ERR_MODEL_CONFIG_INVALID', `'${name}' is not a usable model name`);
    const dir = join(this.repository, name);
    if (modelJson !== undefined) parseModelConfig(name, modelJson); // refuse a bad model.json before touching anything
    mkdirSync(dir, { recursive: true });
    const staging = join(dir, `.staging-${version}`);
    rmSync(staging, { recursive: true, force: true });
    mkdirSync(staging);
    try {
      copyFileSync(file, join(staging, MODEL_FILE));
      fsyncPath(join(staging, MODEL_FILE));
      // The version carries its model.json in: no power cut can serve it with the old one.
      if (modelJson !== undefined) {
        writeFileDurably(join(staging, INSTALL_CONFIG), JSON.stringify(modelJson, null, 2));
        writeFileDurably(join(staging, PREVIOUS_CONFIG), currentModelConfig(dir));
      }
      fsyncPath(staging);
    } catch (err) {
      // A disk that filled during the copy gets its space back; the old version serves on.
      rmSync(staging, { recursive: true, force: true });
      throw err;
    }
    await this.hooks.step?.('staged');
    const target = join(dir, String(version));
    // The same version again (another file): the one in place is moved aside, not deleted, so a
    // power cut before the rename below leaves it to come back at the next start.
    const replaced = join(dir, `${REPLACED_PREFIX}${version}`);
    rmSync(replaced, { recursive: true, force: true });
    if (existsSync(target)) {
      renameSync(target, replaced);
      fsyncPath(dir);
      await this.hooks.step?.('replaced');
    }
    renameSync(staging, target);
    fsyncPath(dir);
    await this.hooks.step?.('renamed');
    try {
      promoteInstallConfig(dir, target);
    } catch (err) {
      // model.json could not be written (a disk that filled since the copy): the version goes
      // out again, so no restart serves it while this install reports a failure.
      await this.takeOut(dir, target, version);
      throw err;
    }
    await this.hooks.step?.('configured');

    const status = await this.registry.load(name);
    const failure = status.versions.find((v) => v.version === version && v.state === 'failed')?.error ?? this.registry.failureOf(name, version) ?? status.error;
    if (failure || !status.served.includes(version)) {
      // Undo: the old version never stopped serving; reload to clear the failed version.
      await this.takeOut(dir, target, version);
      if (listVersions(this.repository, name).length > 0) await this.registry.load(name);
      else await this.registry.unload(name).catch(() => undefined);
      throw new PerchError((failure?.code as PerchError['code']) ?? 'PERCH_ERR_MODEL_LOAD_FAILED', failure?.message ?? `version ${version} of '${name}' did not come up`);
    }
    rmSync(replaced, { recursive: true, force: true });
    this.pruneOlder(name, version);
    this.log.info({ model: name, version }, 'model version installed');
    return this.describe(name, version);
  }

  /**
   * Undoes an install: the version folder renamed away first (the step that counts after a power
   * cut), then the model.json it replaced put back, then deleted. When model.json cannot be put
   * back (a full disk), its ONNX file goes (the space back) and the folder with its
   * previous.model.json stays for the next start to finish (install-journal.ts).
   */
  private async takeOut(dir: string, target: string, version: number): Promise<void> {
    const failed = join(dir, `.failed-${version}`);
    rmSync(failed, { recursive: true, force: true });
    renameSync(target, failed);
    fsyncPath(dir);
    await this.hooks.step?.('undo-renamed');
    try {
      restorePreviousConfig(dir, failed);
    } catch (err) {
      rmSync(join(failed, MODEL_FILE), { force: true });
      this.log.error({ dir, err: (err as Error).message }, 'model.json not put back after an undone install; the next start does it');
      putBackReplaced(dir, version);
      return;
    }
    rmSync(failed, { recursive: true, force: true });
    putBackReplaced(dir, version);
  }

  /** Serves the previous version again and deletes the current one. */
  async rollback(name: string): Promise<ServedModel> {
    const current = this.registry.statusOf(name).served.at(-1);
    const previous = current === undefined ? null : this.previousOf(name, current);
    if (current === undefined || previous === null) throw new PerchError('PERCH_ERR_NO_PREVIOUS_VERSION', `model '${name}' keeps no previous version to roll back to`);
    const dir = join(this.repository, name);
    const currentDir = join(dir, String(current));
    const gone = join(dir, `.rolled-back-${current}`);
    const currentConfig = currentModelConfig(dir);
    rmSync(gone, { recursive: true, force: true });
    renameSync(currentDir, gone);
    fsyncPath(dir);
    await this.hooks.step?.('rollback-renamed');
    // The previous version serves with the model.json it served with before (the current one
    // recorded it when it was installed); a version copied in by hand recorded none.
    let restored: boolean;
    try {
      restored = restorePreviousConfig(dir, gone);
    } catch (err) {
      // Not written (a full disk): model.json is still the current one's, so it comes back.
      renameSync(gone, currentDir);
      fsyncPath(dir);
      throw err;
    }
    await this.hooks.step?.('rollback-configured');
    const status = await this.registry.load(name);
    if (!status.served.includes(previous)) {
      // Previous does not load: keep what serves, with its model.json (carried back in, as an install).
      if (restored) writeFileDurably(join(gone, INSTALL_CONFIG), currentConfig);
      renameSync(gone, currentDir);
      fsyncPath(dir);
      promoteInstallConfig(dir, currentDir);
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
