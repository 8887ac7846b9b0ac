// Model signatures (docs/protocol.md section 5): Ed25519 over the UTF-8 bytes of a signed manifest.
// The manifest has a version of its own (the spec's `manifest`, absent = 1), so signatures made
// before it grew stay readable:
// - manifest 1: JSON.stringify({name, version, sha256, size}), keys in exactly that order;
// - manifest 2: JSON.stringify({manifest: 2, name, version, sha256, size, configSha256}), where
//   configSha256 is the SHA-256 of the canonical JSON (keys sorted) of the spec's `config` (the
//   model.json that travels with it, version policy included), or null when there is none.
//   Everything that changes what a device serves is covered (docs/cloud-sync.md, "Signatures").
// Node's own crypto, no dependency. Both sides build the signed bytes here, so they agree byte
// for byte.
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, sign as edSign, verify as edVerify, type KeyObject } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { PerchError } from '../../runtime/base/errors.js';

export type KeyInput = KeyObject | string | Buffer;

/** The manifest versions this build reads; the newest is what it signs. */
export const MANIFEST_VERSIONS = [1, 2] as const;
export type ManifestVersion = (typeof MANIFEST_VERSIONS)[number];
export const CURRENT_MANIFEST: ManifestVersion = 2;

/** The exact bytes a manifest 1 signature covers. */
export function signedBytes(name: string, version: number, sha256: string, size: number): Buffer {
  // Literal in this order: JSON.stringify keeps insertion order, and the order is the contract.
  return Buffer.from(JSON.stringify({ name, version, sha256, size }), 'utf8');
}

/** JSON with every object's keys sorted: one text per value, whatever order it was built in. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map((v) => canonicalJson(v === undefined ? null : v)).join(',')}]`;
  if (typeof value === 'object' && value !== null) {
    const keys = Object.keys(value).filter((k) => (value as Record<string, unknown>)[k] !== undefined).sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson((value as Record<string, unknown>)[k])}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

/** SHA-256 (hex) of a model.json's canonical JSON, or null for none. */
export function configDigest(config: unknown): string | null {
  return config === undefined || config === null ? null : createHash('sha256').update(canonicalJson(config), 'utf8').digest('hex');
}

/** What a manifest 2 signature covers, apart from the model name. */
export interface ManifestFields {
  version: number;
  sha256: string;
  size: number;
  config?: Record<string, unknown> | undefined;
}

/** The exact bytes a manifest 2 signature covers. */
export function manifestBytes(name: string, f: ManifestFields): Buffer {
  const { version, sha256, size } = f;
  return Buffer.from(JSON.stringify({ manifest: 2, name, version, sha256, size, configSha256: configDigest(f.config) }), 'utf8');
}

/** Base64 Ed25519 signature of the manifest 2 of a model version (model bytes and model.json). */
export function signManifest(key: KeyInput, name: string, f: ManifestFields): { manifest: 2; signature: string } {
  return { manifest: 2, signature: edSign(null, manifestBytes(name, f), privateKey(key)).toString('base64') };
}

/** Throws unless `key` is an Ed25519 private key (an RSA TLS key would sign something else entirely). */
export function assertSigningKey(key: KeyInput): KeyObject {
  let k: KeyObject;
  try {
    k = privateKey(key);
  } catch (err) {
    throw new PerchError('PERCH_ERR_SIGNING_KEY_INVALID', `not a PEM private key: ${(err as Error).message}`, { cause: err });
  }
  if (k.asymmetricKeyType !== 'ed25519') {
    throw new PerchError('PERCH_ERR_SIGNING_KEY_INVALID', `the signing key is ${k.asymmetricKeyType ?? 'unknown'}, not Ed25519 (make one with perch fleet keygen)`);
  }
  return k;
}

function privateKey(key: KeyInput): KeyObject {
  return typeof key === 'string' || Buffer.isBuffer(key) ? createPrivateKey(key) : key;
}

function publicKey(key: KeyInput): KeyObject {
  if (typeof key === 'string' || Buffer.isBuffer(key)) return createPublicKey(key);
  return key.type === 'private' ? createPublicKey(key) : key;
}

/** Base64 Ed25519 signature of a model version. `key` is a PEM private key or a KeyObject. */
export function sign(key: KeyInput, name: string, version: number, sha256: string, size: number): string {
  // Ed25519 takes no digest algorithm: null [RFC 8032, node:crypto sign()].
  return edSign(null, signedBytes(name, version, sha256, size), privateKey(key)).toString('base64');
}

export type VerifyResult =
  | { ok: true; keyIndex: number; manifest: ManifestVersion }
  | { ok: false; code: 'PERCH_ERR_MODEL_UNSIGNED' | 'PERCH_ERR_MODEL_SIGNATURE_INVALID'; message: string };

export interface SignedSpec {
  version: number;
  sha256: string;
  size: number;
  signature?: string | undefined;
  /** Manifest version of the signature; absent = 1. */
  manifest?: number | undefined;
  config?: Record<string, unknown> | undefined;
}

/**
 * Checks a ModelSpec's signature for model `name` against each trusted public key. Never throws
 * for a bad signature or key: a key that cannot be used simply does not verify.
 */
export function verifySignature(spec: SignedSpec, name: string, trustedKeys: readonly KeyInput[]): VerifyResult {
  if (spec.signature === undefined || spec.signature === '') {
    return { ok: false, code: 'PERCH_ERR_MODEL_UNSIGNED', message: `model '${name}' version ${spec.version} has no signature` };
  }
  const manifest = spec.manifest ?? 1;
  if (manifest !== 1 && manifest !== 2) {
    return { ok: false, code: 'PERCH_ERR_MODEL_SIGNATURE_INVALID', message: `model '${name}' version ${spec.version}: signed manifest version ${manifest} is not one this device reads (${MANIFEST_VERSIONS.join(', ')})` };
  }
  const sig = Buffer.from(spec.signature, 'base64');
  const data = manifest === 1 ? signedBytes(name, spec.version, spec.sha256, spec.size) : manifestBytes(name, spec);
  for (const [i, key] of trustedKeys.entries()) {
    try {
      if (edVerify(null, data, publicKey(key), sig)) return { ok: true, keyIndex: i, manifest };
    } catch {
      // Not an Ed25519 key, or a malformed one: it cannot vouch for this model.
    }
  }
  return {
    ok: false,
    code: 'PERCH_ERR_MODEL_SIGNATURE_INVALID',
    message: `model '${name}' version ${spec.version}: signature does not verify against any of ${trustedKeys.length} trusted key(s)`,
  };
}

const PEM_BLOCK = /-----BEGIN PUBLIC KEY-----[\s\S]+?-----END PUBLIC KEY-----/g;

/** Every PEM public key in a text (PERCH_TRUSTED_KEYS may hold several, one after another). */
export function parseTrustedKeys(pem: string): KeyObject[] {
  return (pem.match(PEM_BLOCK) ?? []).map((block) => createPublicKey(block));
}

/** A fresh Ed25519 key pair as PEM (SPKI public, PKCS#8 private). */
export function generateSigningKeyPair(): { publicKeyPem: string; privateKeyPem: string } {
  const { publicKey: pub, privateKey: priv } = generateKeyPairSync('ed25519');
  return {
    publicKeyPem: pub.export({ type: 'spki', format: 'pem' }).toString(),
    privateKeyPem: priv.export({ type: 'pkcs8', format: 'pem' }).toString(),
  };
}

/** SHA-256 (hex) and size of a file, streamed so a large model does not sit in memory. */
export async function fileDigest(file: string): Promise<{ sha256: string; size: number }> {
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of createReadStream(file)) {
    hash.update(chunk as Buffer);
    size += (chunk as Buffer).length;
  }
  return { sha256: hash.digest('hex'), size };
}
