// Step "check-signature", before anything is downloaded: the signature covers the name, version,
// SHA-256 and size (and, from manifest 2, the model.json), so it can be checked from the desired
// document alone; the digest step after the download ties the bytes to it. Ed25519 against the
// trusted keys of `cloud.trustedKeysFile` (one or more PEM public keys, read at each check, so a
// replaced key file counts without a restart). docs/cloud-sync.md, "Signatures".
import { readFileSync } from 'node:fs';
import { PerchError } from '../../../runtime/base/errors.js';
import { parseTrustedKeys, verifySignature, type ModelSpec } from '../../protocol/index.js';

export interface SignaturePolicy {
  trustedKeysFile: string | null;
  allowUnsignedModels: boolean;
}

/**
 * Throws PERCH_ERR_MODEL_UNSIGNED, PERCH_ERR_MODEL_SIGNATURE_INVALID or
 * PERCH_ERR_MODEL_CONFIG_UNSIGNED; returns how it passed.
 */
export function checkSignature(name: string, spec: ModelSpec, policy: SignaturePolicy): 'verified' | 'unsigned-allowed' {
  if (spec.signature === undefined || spec.signature === '') {
    if (policy.allowUnsignedModels) return 'unsigned-allowed';
    throw new PerchError('PERCH_ERR_MODEL_UNSIGNED', `model '${name}' version ${spec.version} has no signature and cloud.allowUnsignedModels is false`);
  }
  let keys: ReturnType<typeof parseTrustedKeys> = [];
  if (policy.trustedKeysFile) {
    try {
      keys = parseTrustedKeys(readFileSync(policy.trustedKeysFile, 'utf8'));
    } catch (err) {
      throw new PerchError('PERCH_ERR_MODEL_SIGNATURE_INVALID', `trusted keys file ${policy.trustedKeysFile} cannot be read: ${(err as Error).message}`, { cause: err });
    }
  }
  if (keys.length === 0) {
    // Signed, but nothing to check against: only acceptable where unsigned models are.
    if (policy.allowUnsignedModels) return 'unsigned-allowed';
    throw new PerchError('PERCH_ERR_MODEL_SIGNATURE_INVALID', `model '${name}' version ${spec.version} is signed but no trusted key is configured (cloud.trustedKeysFile)`);
  }
  const r = verifySignature(spec, name, keys);
  if (!r.ok) throw new PerchError(r.code, r.message);
  if (r.manifest === 1 && spec.config !== undefined) {
    // A manifest 1 signature says nothing about the model.json beside it: a captured old spec
    // with a model.json added (say, a version policy pinning an old version) must not pass.
    if (policy.allowUnsignedModels) return 'unsigned-allowed';
    throw new PerchError(
      'PERCH_ERR_MODEL_CONFIG_UNSIGNED',
      `model '${name}' version ${spec.version} carries a model.json that its signature (manifest 1) does not cover; sign it again with this perch fleet (manifest 2)`,
    );
  }
  return 'verified';
}
