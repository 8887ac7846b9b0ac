// Builds a ModelSpec for a model file: digest, size, chunk size, model.json and (with a key) the
// signature over manifest 2, which covers the model.json too (protocol/signing.ts).
import { readFileSync } from 'node:fs';
import { duplicateKeyProblem } from '../../../runtime/base/duplicate-keys.js';
import { PerchError } from '../../../runtime/base/errors.js';
import { jsonObjectSchema, type ModelSpec } from '../../protocol/schemas.js';
import { assertSigningKey, fileDigest, signManifest } from '../../protocol/signing.js';
import { chunkingProblem } from '../../protocol/chunks.js';

/** 64 KiB: small enough for a Pi's memory and MQTT brokers' defaults, large enough for speed. */
export const DEFAULT_CHUNK_SIZE = 64 * 1024;

export interface SpecInput {
  name: string;
  version: number;
  file: string;
  /** PEM file of the Ed25519 private key; no signature without it. */
  keyFile?: string | undefined;
  chunkSize?: number | undefined;
  /** Path of a model.json to ship with the model. */
  configFile?: string | undefined;
}

export async function buildSpec(input: SpecInput): Promise<ModelSpec> {
  // Checked before the file is read: an RSA TLS key given by mistake fails at once, by its code.
  const key = input.keyFile ? assertSigningKey(readFileSync(input.keyFile)) : null;
  const { sha256, size } = await fileDigest(input.file);
  // Devices refuse what they could not afford to fetch (protocol/chunks.ts): say so here, not on every device.
  const chunking = chunkingProblem(size, input.chunkSize ?? DEFAULT_CHUNK_SIZE);
  if (chunking) throw new PerchError('PERCH_ERR_MODEL_CHUNK_SIZE_INVALID', `${input.file}: ${chunking}`);
  let config: Record<string, unknown> | undefined;
  if (input.configFile) {
    let parsed: unknown;
    let text: string;
    try {
      text = readFileSync(input.configFile, 'utf8');
      parsed = JSON.parse(text);
    } catch (err) {
      throw new PerchError('PERCH_ERR_MODEL_CONFIG_INVALID', `${input.configFile}: ${(err as Error).message}`, { cause: err });
    }
    // As the device reads model.json (runtime/base/duplicate-keys.ts): a key twice is refused here, not on every device.
    const twice = duplicateKeyProblem(text);
    if (twice !== null) throw new PerchError('PERCH_ERR_MODEL_CONFIG_INVALID', `${input.configFile}: ${twice}`);
    const obj = jsonObjectSchema.safeParse(parsed);
    if (!obj.success) throw new PerchError('PERCH_ERR_MODEL_CONFIG_INVALID', `${input.configFile} is not a JSON object`);
    config = obj.data;
  }
  // Key order here is the order printed and published: version, sha256, size, chunkSize, manifest, signature, config.
  const spec: ModelSpec = { version: input.version, sha256, size, chunkSize: input.chunkSize ?? DEFAULT_CHUNK_SIZE };
  if (key) Object.assign(spec, signManifest(key, input.name, { version: input.version, sha256, size, config }));
  if (config) spec.config = config;
  return spec;
}
