// The fleet's model store on disk: `<store>/models/<name>/<version>/model.onnx`, its
// `spec.json` (the ModelSpec published to devices) and, when given, `model.json`. `serve`
// answers chunk requests from here, so a version is written fully before its spec appears.
import { copyFileSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { PerchError } from '../../../runtime/base/errors.js';
import { modelSpecSchema, type ModelSpec } from '../../protocol/schemas.js';

export const MODEL_FILE = 'model.onnx';
export const SPEC_FILE = 'spec.json';

export function versionDir(store: string, name: string, version: number): string {
  return join(store, 'models', name, String(version));
}

/** Copies the model file in and writes its spec; each file appears atomically (write + rename). */
export function putModel(store: string, name: string, spec: ModelSpec, sourceFile: string): string {
  const dir = versionDir(store, name, spec.version);
  mkdirSync(dir, { recursive: true });
  const model = join(dir, MODEL_FILE);
  copyFileSync(sourceFile, `${model}.tmp`);
  renameSync(`${model}.tmp`, model);
  if (spec.config) writeFileSync(join(dir, 'model.json'), `${JSON.stringify(spec.config, null, 2)}\n`);
  writeFileSync(join(dir, `${SPEC_FILE}.tmp`), `${JSON.stringify(spec, null, 2)}\n`);
  renameSync(join(dir, `${SPEC_FILE}.tmp`), join(dir, SPEC_FILE));
  return dir;
}

/** The stored spec, or PERCH_ERR_FLEET_MODEL_MISSING. */
export function readSpec(store: string, name: string, version: number): ModelSpec {
  const file = join(versionDir(store, name, version), SPEC_FILE);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new PerchError('PERCH_ERR_FLEET_MODEL_MISSING', `the fleet store has no ${name} version ${version} (${file})`, { cause: err });
  }
  const parsed = modelSpecSchema.safeParse(JSON.parse(text));
  if (!parsed.success) throw new PerchError('PERCH_ERR_FLEET_MODEL_MISSING', `${file} is not a valid ModelSpec`);
  return parsed.data;
}

export function chunkCount(spec: Pick<ModelSpec, 'size' | 'chunkSize'>): number {
  return Math.ceil(spec.size / spec.chunkSize);
}

/**
 * Reads chunk `index` (already range-checked) of an open model file. One read per chunk: serve
 * reads a chunk only when its device's turn comes (serve/chunk-share.ts), so runs of a device's
 * chunks are no longer read together.
 */
export async function readChunk(fh: FileHandle, name: string, spec: ModelSpec, index: number): Promise<Buffer> {
  const offset = index * spec.chunkSize;
  const len = Math.min(spec.chunkSize, spec.size - offset);
  const buf = Buffer.allocUnsafe(len);
  const { bytesRead } = await fh.read(buf, 0, len, offset);
  if (bytesRead !== len) throw new PerchError('PERCH_ERR_FLEET_MODEL_MISSING', `${name} version ${spec.version}: model file shorter than its spec says`);
  return buf;
}
