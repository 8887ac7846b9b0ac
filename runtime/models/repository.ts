// The model repository on disk (docs/protocol.md section 1):
//   <repository>/<model>/model.json            optional
//   <repository>/<model>/<version>/model.onnx  version = positive integer folder name
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { duplicateKeyProblem } from '../base/duplicate-keys.js';
import { PerchError } from '../base/errors.js';
import { formatIssues } from '../base/zod-issues.js';
import { modelConfigSchema, type ModelConfigFile, type VersionPolicy } from './model-config.js';

export const MODEL_FILE = 'model.onnx';
export const CONFIG_FILE = 'model.json';

/**
 * Names a model may be installed under at run time (ModelInstaller.install). Narrower than the
 * cloud protocol's names, which allow ':': a cloud update checks it before it downloads anything.
 */
export const INSTALLABLE_MODEL_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;

/** Model folder names; hidden folders and plain files are skipped. */
export function listModelNames(repository: string): string[] {
  return readdirSync(repository, { withFileTypes: true })
    .filter((e) => e.isDirectory() && !e.name.startsWith('.'))
    .map((e) => e.name)
    .sort();
}

/** Reads and validates model.json; a model without one gets the schema's defaults. */
export function readModelConfig(repository: string, name: string): ModelConfigFile {
  const path = join(repository, name, CONFIG_FILE);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return modelConfigSchema.parse({});
    throw new PerchError('PERCH_ERR_MODEL_CONFIG_INVALID', `model '${name}': cannot read ${CONFIG_FILE}: ${(err as Error).message}`, { cause: err });
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new PerchError('PERCH_ERR_MODEL_CONFIG_INVALID', `model '${name}': ${CONFIG_FILE} is not valid JSON: ${(err as Error).message}`, { cause: err });
  }
  // JSON.parse keeps the last of a key given twice, silently (duplicate-keys.ts).
  const twice = duplicateKeyProblem(text);
  if (twice !== null) throw new PerchError('PERCH_ERR_MODEL_CONFIG_INVALID', `model '${name}': ${CONFIG_FILE} is invalid:\n  - ${twice}`);
  return parseModelConfig(name, raw);
}

export function parseModelConfig(name: string, raw: unknown): ModelConfigFile {
  const result = modelConfigSchema.safeParse(raw);
  if (!result.success) {
    throw new PerchError('PERCH_ERR_MODEL_CONFIG_INVALID', `model '${name}': ${CONFIG_FILE} is invalid:\n${formatIssues(result.error)}`);
  }
  return result.data;
}

/**
 * Version folders that hold a model file, ascending. Non-integer folder names are ignored. A
 * pipeline (model.json `pipeline`) has no model file: it is version 1 (docs/models.md, "Pipelines").
 */
export function listVersions(repository: string, name: string, pipeline = false): number[] {
  if (pipeline) return [1];
  const dir = join(repository, name);
  return readdirSync(dir, { withFileTypes: true })
    .filter((e) => e.isDirectory() && /^[1-9]\d*$/.test(e.name))
    .map((e) => Number(e.name))
    .filter((v) => Number.isSafeInteger(v) && isFile(join(dir, String(v), MODEL_FILE)))
    .sort((a, b) => a - b);
}

export function modelPath(repository: string, name: string, version: number): string {
  return join(repository, name, String(version), MODEL_FILE);
}

/** The versions a policy serves, ascending (Triton's version_policy). */
export function selectVersions(available: readonly number[], policy: VersionPolicy): number[] {
  if ('latest' in policy) return available.slice(-policy.latest);
  if ('specific' in policy) return available.filter((v) => policy.specific.includes(v));
  return available.slice();
}

function isFile(path: string): boolean {
  try {
    return statSync(path).isFile();
  } catch {
    return false;
  }
}
