// Model signatures (docs/protocol.md section 5): Ed25519 over the UTF-8 bytes of
// JSON.stringify({name, version, sha256, size}), keys in exactly that order. Node's own crypto,
// no dependency. Both sides build the signed bytes here, so they agree byte for byte.
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, sign as edSign, verify as edVerify, type KeyObject } from 'node:crypto';
import { createReadStream } from 'node:fs';

export type KeyInput = KeyObject | string | Buffer;

/** The exact bytes a model signature covers. */
export function signedBytes(name: string, version: number, sha256: string, size: number): Buffer {
  // Literal in this order: JSON.stringify keeps insertion order, and the order is the contract.
  return Buffer.from(JSON.stringify({ name, version, sha256, size }), 'utf8');
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
  | { ok: true; keyIndex: number }
  | { ok: false; code: 'PERCH_ERR_MODEL_UNSIGNED' | 'PERCH_ERR_MODEL_SIGNATURE_INVALID'; message: string };

export interface SignedSpec {
  version: number;
  sha256: string;
  size: number;
  signature?: string | undefined;
}

/**
 * Checks a ModelSpec's signature for model `name` against each trusted public key. Never throws
 * for a bad signature or key: a key that cannot be used simply does not verify.
 */
export function verifySignature(spec: SignedSpec, name: string, trustedKeys: readonly KeyInput[]): VerifyResult {
  if (spec.signature === undefined || spec.signature === '') {
    return { ok: false, code: 'PERCH_ERR_MODEL_UNSIGNED', message: `model '${name}' version ${spec.version} has no signature` };
  }
  const sig = Buffer.from(spec.signature, 'base64');
  const data = signedBytes(name, spec.version, spec.sha256, spec.size);
  for (const [i, key] of trustedKeys.entries()) {
    try {
      if (edVerify(null, data, publicKey(key), sig)) return { ok: true, keyIndex: i };
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
