// Model specs for desired documents, signed with a fresh test key, from the real model files.
import { createHash } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chunkDigestsOf, generateSigningKeyPair, sign, type ModelSpec } from '../../../cloud-sync/protocol/index.js';

export interface TestKeys {
  privateKeyPem: string;
  /** File holding the trusted public key(s), for cloud.trustedKeysFile. */
  trustedKeysFile: string;
}

export function makeKeys(): TestKeys {
  const trusted = generateSigningKeyPair();
  const other = generateSigningKeyPair();
  const dir = mkdtempSync(join(tmpdir(), 'perch-keys-'));
  const trustedKeysFile = join(dir, 'trusted.pem');
  // Two keys in one file: the device must try each.
  writeFileSync(trustedKeysFile, other.publicKeyPem + trusted.publicKeyPem);
  return { privateKeyPem: trusted.privateKeyPem, trustedKeysFile };
}

export function sha256(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex');
}

/** `chunkDigests: true` lists each chunk's SHA-256 as `perch fleet` does; without, a spec as older fleets made. */
export function specFor(name: string, version: number, bytes: Buffer, keys: TestKeys | null, chunkSize = 64 * 1024, opts: { chunkDigests?: boolean } = {}): ModelSpec {
  const digest = sha256(bytes);
  const spec: ModelSpec = { version, sha256: digest, size: bytes.length, chunkSize };
  if (keys) spec.signature = sign(keys.privateKeyPem, name, version, digest, bytes.length);
  if (opts.chunkDigests) spec.chunkDigests = chunkDigestsOf(bytes, chunkSize);
  return spec;
}
