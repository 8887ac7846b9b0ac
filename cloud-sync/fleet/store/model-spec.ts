// Builds a ModelSpec for a model file: digest, size, chunk size, model.json, (with a key) the
// signature over manifest 2, which covers the model.json too (protocol/signing.ts), and each
// chunk's digest (protocol/chunks.ts).
import { createHash } from 'node:crypto';
import { createReadStream, readFileSync, statSync } from 'node:fs';
import { duplicateKeyProblem } from '../../../runtime/base/duplicate-keys.js';
import { PerchError } from '../../../runtime/base/errors.js';
import { jsonObjectSchema, type ModelSpec } from '../../protocol/schemas.js';
import { assertSigningKey, signManifest } from '../../protocol/signing.js';
import { ChunkHasher, chunkingProblem, MAX_DIGESTED_CHUNKS } from '../../protocol/chunks.js';
import { MAX_JSON_DEPTH, nestedDeeperThan } from '../../../runtime/base/json-depth.js';

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
  const chunkSize = input.chunkSize ?? DEFAULT_CHUNK_SIZE;
  // Devices refuse what they could not afford to fetch (protocol/chunks.ts): say so here, not on every device.
  const size = statSync(input.file).size;
  const chunking = chunkingProblem(size, chunkSize);
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
    // In the desired document it sits 3 levels down (models, the name, the spec), and devices
    // refuse documents nested deeper than MAX_JSON_DEPTH unread (docs/protocol.md section 5).
    if (nestedDeeperThan(parsed, MAX_JSON_DEPTH - 3)) {
      throw new PerchError('PERCH_ERR_MODEL_CONFIG_INVALID', `${input.configFile} nests objects or arrays more than ${MAX_JSON_DEPTH - 3} levels deep`);
    }
    const obj = jsonObjectSchema.safeParse(parsed);
    if (!obj.success) throw new PerchError('PERCH_ERR_MODEL_CONFIG_INVALID', `${input.configFile} is not a JSON object`);
    config = obj.data;
  }
  // One pass over the file: its digest, and each chunk's while there are few enough to list.
  const digested = Math.ceil(size / chunkSize) <= MAX_DIGESTED_CHUNKS;
  const { sha256, chunkDigests } = await fileDigests(input.file, digested ? chunkSize : null);
  // Key order here is the order printed and published: version, sha256, size, chunkSize, manifest, signature, config, chunkDigests.
  const spec: ModelSpec = { version: input.version, sha256, size, chunkSize };
  if (key) Object.assign(spec, signManifest(key, input.name, { version: input.version, sha256, size, config }));
  if (config) spec.config = config;
  if (chunkDigests !== null) spec.chunkDigests = chunkDigests;
  return spec;
}

/** SHA-256 of a file and, with a chunk size, `chunkDigests`, streamed so a large model does not sit in memory. */
async function fileDigests(file: string, chunkSize: number | null): Promise<{ sha256: string; chunkDigests: string | null }> {
  const whole = createHash('sha256');
  const chunks = chunkSize === null ? null : new ChunkHasher(chunkSize);
  for await (const part of createReadStream(file)) {
    whole.update(part as Buffer);
    chunks?.update(part as Buffer);
  }
  return { sha256: whole.digest('hex'), chunkDigests: chunks?.digest() ?? null };
}
