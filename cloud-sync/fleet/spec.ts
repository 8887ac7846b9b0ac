// Builds a ModelSpec for a model file: digest, size, chunk size, and (with a key) the signature.
import { readFileSync } from 'node:fs';
import { PerchError } from '../../runtime/errors.js';
import { jsonObjectSchema, type ModelSpec } from '../protocol/schemas.js';
import { fileDigest, sign } from '../protocol/signing.js';

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
  const { sha256, size } = await fileDigest(input.file);
  // Key order here is the order printed and published: version, sha256, size, chunkSize, signature, config.
  const spec: ModelSpec = { version: input.version, sha256, size, chunkSize: input.chunkSize ?? DEFAULT_CHUNK_SIZE };
  if (input.keyFile) spec.signature = sign(readFileSync(input.keyFile), input.name, input.version, sha256, size);
  if (input.configFile) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(readFileSync(input.configFile, 'utf8'));
    } catch (err) {
      throw new PerchError('PERCH_ERR_MODEL_CONFIG_INVALID', `${input.configFile}: ${(err as Error).message}`, { cause: err });
    }
    const obj = jsonObjectSchema.safeParse(parsed);
    if (!obj.success) throw new PerchError('PERCH_ERR_MODEL_CONFIG_INVALID', `${input.configFile} is not a JSON object`);
    spec.config = obj.data;
  }
  return spec;
}
