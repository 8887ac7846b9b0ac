// What makes an install, an undone install and a rollback one step as seen after a power cut
// (docs/models.md, "Installs and power cuts"). model.json belongs to the model, the ONNX file to
// its version folder: no single rename changes both. So the version folder carries its config
// with it, and the rename of that folder is the one step that counts:
//   <model>/<v>/install.model.json   the model.json it was installed with, until that is in
//                                    place as <model>/model.json (then deleted)
//   <model>/<v>/previous.model.json  the model.json it replaced (empty: there was none), put
//                                    back when the version is undone or rolled back
// A version folder renamed into place with its install.model.json, or renamed away to
// .failed-<v> / .rolled-back-<v> with its previous.model.json, has its model.json finished at
// the next start (finishInterrupted) if the power went before the install did it. Installing a
// version number that is already there moves that folder aside (.replaced-<v>) until the new one
// is in place or undone; the start puts it back when no <v> is.
import { existsSync, readdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fsyncPath, writeFileDurably } from '../base/durable-file.js';
import type { Logger } from '../base/log.js';
import { CONFIG_FILE, listModelNames } from './repository.js';

export const INSTALL_CONFIG = 'install.model.json';
export const PREVIOUS_CONFIG = 'previous.model.json';
/** A version being copied in: not installed until renamed to <v>. */
export const STAGING_PREFIX = '.staging-';
/** The same version number being installed again: the one it replaces, until the new one is in place. */
export const REPLACED_PREFIX = '.replaced-';
/** A version taken out (install undone, rolled back): its previous.model.json goes back. */
export const REMOVED_PREFIXES = ['.failed-', '.rolled-back-'] as const;

/** Writes `bytes` as the model's model.json; empty bytes mean "no model.json". */
export function setModelConfig(modelDir: string, bytes: Uint8Array): void {
  const path = join(modelDir, CONFIG_FILE);
  // Already so (an undo after model.json could not be written, a start finishing twice): no
  // write, which a full disk would refuse.
  if (currentModelConfig(modelDir).equals(bytes)) return;
  if (bytes.length > 0) {
    writeFileDurably(path, bytes);
    return;
  }
  rmSync(path, { force: true });
  fsyncPath(modelDir);
}

/** The model.json now, as bytes (empty: none), to be put back later. */
export function currentModelConfig(modelDir: string): Buffer {
  const path = join(modelDir, CONFIG_FILE);
  return existsSync(path) ? readFileSync(path) : Buffer.alloc(0);
}

/** Puts the config `versionDir` was installed with in place, then forgets it. True when there was one. */
export function promoteInstallConfig(modelDir: string, versionDir: string): boolean {
  const marker = join(versionDir, INSTALL_CONFIG);
  if (!existsSync(marker)) return false;
  setModelConfig(modelDir, readFileSync(marker));
  rmSync(marker);
  fsyncPath(versionDir);
  return true;
}

/** Puts back the model.json the version in `removedDir` replaced. True when it recorded one. */
export function restorePreviousConfig(modelDir: string, removedDir: string): boolean {
  const prev = join(removedDir, PREVIOUS_CONFIG);
  if (!existsSync(prev)) return false;
  setModelConfig(modelDir, readFileSync(prev));
  return true;
}

/** A version moved aside for another file of the same number comes back when that one is not in place. */
export function putBackReplaced(modelDir: string, version: number): boolean {
  const replaced = join(modelDir, `${REPLACED_PREFIX}${version}`);
  if (!existsSync(replaced)) return false;
  const target = join(modelDir, String(version));
  if (existsSync(target)) {
    rmSync(replaced, { recursive: true, force: true });
    return false;
  }
  renameSync(replaced, target);
  fsyncPath(modelDir);
  return true;
}

/**
 * At start, before any model loads: finishes what a power cut (or SIGKILL) interrupted, so the
 * version that serves has the model.json it was installed with. A staging copy never renamed
 * into place is deleted; a version renamed away has its previous model.json put back and is
 * deleted; a version renamed into place gets its install.model.json.
 */
export function finishInterrupted(repository: string, log: Logger): void {
  for (const name of listModelNames(repository)) {
    try {
      finishModel(join(repository, name), name, log);
    } catch (err) {
      // A repository that cannot be written (read-only image): the model loads as it is.
      log.error({ model: name, err: (err as Error).message }, 'interrupted model install not finished');
    }
  }
}

function finishModel(dir: string, name: string, log: Logger): void {
  const entries = readdirSync(dir).sort();
  for (const e of entries) {
    if (e.startsWith(STAGING_PREFIX) || /^\.model\.json\.\d+\.tmp$/.test(e)) {
      rmSync(join(dir, e), { recursive: true, force: true });
      log.warn({ model: name, path: e }, 'interrupted model install: staging copy deleted');
    }
  }
  for (const e of entries) {
    if (!REMOVED_PREFIXES.some((p) => e.startsWith(p))) continue;
    const restored = restorePreviousConfig(dir, join(dir, e));
    rmSync(join(dir, e), { recursive: true, force: true });
    log.warn({ model: name, path: e, modelJsonRestored: restored }, 'interrupted model undo or rollback finished');
  }
  for (const e of entries) {
    const m = /^\.replaced-([1-9]\d*)$/.exec(e);
    if (m && putBackReplaced(dir, Number(m[1]))) log.warn({ model: name, version: Number(m[1]) }, 'interrupted model install: the version it would have replaced put back');
  }
  const versions = entries.filter((e) => /^[1-9]\d*$/.test(e)).sort((a, b) => Number(a) - Number(b));
  for (const v of versions) {
    if (promoteInstallConfig(dir, join(dir, v))) log.warn({ model: name, version: Number(v) }, 'interrupted model install finished: its model.json put in place');
  }
}
