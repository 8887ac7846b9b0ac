// Model signatures (docs/protocol.md section 5) through `perch fleet keygen` and `sign`, verified with
// the shared protocol module: a round trip, and a forged or altered spec refused.
import assert from 'node:assert/strict';
import { createHash, generateKeyPairSync } from 'node:crypto';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { chunkDigestsOf } from '../../cloud-sync/protocol/chunks.js';
import { modelSpecSchema } from '../../cloud-sync/protocol/schemas.js';
import { fileDigest, generateSigningKeyPair, parseTrustedKeys, sign, signedBytes, signManifest, verifySignature } from '../../cloud-sync/protocol/signing.js';
import { fleet, TempDirs } from './harness.js';

describe('keygen, sign, verify', () => {
  const temp = new TempDirs();
  after(() => temp.cleanup());

  test('signedBytes is JSON.stringify({name, version, sha256, size}) in exactly that order', () => {
    assert.equal(signedBytes('vad', 3, 'ab'.repeat(32), 10).toString('utf8'), `{"name":"vad","version":3,"sha256":"${'ab'.repeat(32)}","size":10}`);
  });

  test('keygen writes a 0600 private key; sign prints a spec that verifies; any change is refused', async () => {
    const dir = temp.make();
    const k = await fleet(['keygen', '--out', join(dir, 'keys')]);
    assert.equal(k.code, 0, k.stderr);
    const priv = join(dir, 'keys', 'signing-key.pem');
    const pub = join(dir, 'keys', 'signing-key.pub.pem');
    assert.equal(statSync(priv).mode & 0o777, 0o600);
    assert.equal((await fleet(['keygen', '--out', join(dir, 'keys')])).code, 2, 'an existing key is not overwritten');

    const model = join(dir, 'model.onnx');
    writeFileSync(model, Buffer.from(Array.from({ length: 200_001 }, (_, i) => i % 251)));
    const s = await fleet(['sign', '--sign-key', priv, '--name', 'vad', '--version', '4', '--file', model]);
    assert.equal(s.code, 0, s.stderr);
    const spec = modelSpecSchema.parse(JSON.parse(s.stdout));
    assert.deepEqual(Object.keys(JSON.parse(s.stdout) as object), ['version', 'sha256', 'size', 'chunkSize', 'manifest', 'signature', 'chunkDigests']);
    assert.deepEqual({ sha256: spec.sha256, size: spec.size }, await fileDigest(model));
    // Each 64 KiB chunk's SHA-256, the short last one too: 4 chunks of the 200,001 bytes.
    const bytes = readFileSync(model);
    const digests = Buffer.from(spec.chunkDigests ?? '', 'base64');
    assert.equal(digests.length, 4 * 32);
    for (let i = 0; i < 4; i++) {
      assert.deepEqual(digests.subarray(i * 32, (i + 1) * 32), createHash('sha256').update(bytes.subarray(i * 65536, (i + 1) * 65536)).digest(), `chunk ${i}`);
    }
    assert.equal(spec.chunkDigests, chunkDigestsOf(bytes, 65536));

    const trusted = parseTrustedKeys(readFileSync(pub, 'utf8'));
    assert.deepEqual(verifySignature(spec, 'vad', trusted), { ok: true, keyIndex: 0, manifest: 2 });
    // The signature binds name, version, sha256 and size: change any of them and it fails.
    const refused = (r: ReturnType<typeof verifySignature>): boolean => !r.ok && r.code === 'PERCH_ERR_MODEL_SIGNATURE_INVALID';
    assert.ok(refused(verifySignature(spec, 'other-model', trusted)), 'another name');
    assert.ok(refused(verifySignature({ ...spec, version: 5 }, 'vad', trusted)), 'another version');
    assert.ok(refused(verifySignature({ ...spec, size: spec.size - 1 }, 'vad', trusted)), 'another size');
    assert.ok(refused(verifySignature({ ...spec, sha256: '0'.repeat(64) }, 'vad', trusted)), 'another digest');
    // Forged: signed by a key the device does not trust.
    const rogue = generateKeyPairSync('ed25519').privateKey;
    const forged = { ...spec, signature: sign(rogue, 'vad', 4, spec.sha256, spec.size) };
    assert.ok(refused(verifySignature(forged, 'vad', trusted)), 'a signature by an untrusted key');
    assert.ok(refused(verifySignature({ ...spec, signature: 'AAAA' }, 'vad', trusted)), 'garbage');
    const { signature: _drop, ...unsigned } = spec;
    assert.equal((verifySignature(unsigned, 'vad', trusted) as { code: string }).code, 'PERCH_ERR_MODEL_UNSIGNED');
    // Trusted keys: the right one among several is found.
    const other = generateKeyPairSync('ed25519').publicKey;
    assert.deepEqual(verifySignature(spec, 'vad', [other, ...trusted]), { ok: true, keyIndex: 1, manifest: 2 });
  });

  test('manifest 1 signatures stay readable; manifest 2 binds the model.json, in any key order', () => {
    const { privateKeyPem, publicKeyPem } = generateSigningKeyPair();
    const trusted = parseTrustedKeys(publicKeyPem);
    const base = { version: 2, sha256: 'ab'.repeat(32), size: 1000 };
    const old = { ...base, signature: sign(privateKeyPem, 'vad', 2, base.sha256, base.size) };
    assert.deepEqual(verifySignature(old, 'vad', trusted), { ok: true, keyIndex: 0, manifest: 1 });
    const config = { maxBatchSize: 4, versionPolicy: { latest: { numVersions: 1 } } };
    const v2 = { ...base, config, ...signManifest(privateKeyPem, 'vad', { ...base, config }) };
    assert.deepEqual(verifySignature(v2, 'vad', trusted), { ok: true, keyIndex: 0, manifest: 2 });
    assert.deepEqual(verifySignature({ ...v2, config: { versionPolicy: { latest: { numVersions: 1 } }, maxBatchSize: 4 } }, 'vad', trusted), { ok: true, keyIndex: 0, manifest: 2 });
    const changed = verifySignature({ ...v2, config: { ...config, versionPolicy: { specific: { versions: [1] } } } }, 'vad', trusted);
    assert.equal(!changed.ok && changed.code, 'PERCH_ERR_MODEL_SIGNATURE_INVALID');
    const dropped = verifySignature({ ...v2, config: undefined }, 'vad', trusted);
    assert.equal(!dropped.ok && dropped.code, 'PERCH_ERR_MODEL_SIGNATURE_INVALID', 'a model.json removed');
    const unknown = verifySignature({ ...v2, manifest: 3 }, 'vad', trusted);
    assert.equal(!unknown.ok && unknown.code, 'PERCH_ERR_MODEL_SIGNATURE_INVALID');
  });

  test('sign and push refuse a signing key that is not Ed25519 (PERCH_ERR_SIGNING_KEY_INVALID); push --key is the TLS key', async () => {
    const dir = temp.make();
    const rsa = join(dir, 'tls.key');
    writeFileSync(rsa, generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' }));
    const model = join(dir, 'model.onnx');
    writeFileSync(model, 'bytes');
    const s = await fleet(['sign', '--sign-key', rsa, '--name', 'vad', '--version', '1', '--file', model]);
    assert.equal(s.code, 1);
    assert.match(s.stderr, /PERCH_ERR_SIGNING_KEY_INVALID: .*rsa, not Ed25519/);
    assert.equal(s.stdout, '');
    // Refused before the broker is even asked (nothing listens on this port).
    const p = await fleet(['push', '--url', 'mqtt://127.0.0.1:9', '--store', dir, '--device', 'd', '--model', 'vad', '--version', '1', '--file', model, '--sign-key', rsa]);
    assert.equal(p.code, 1);
    assert.match(p.stderr, /PERCH_ERR_SIGNING_KEY_INVALID/);
    // --key alone on push was the signing key once: now a usage error that says so.
    const k = await fleet(['push', '--url', 'mqtt://127.0.0.1:9', '--store', dir, '--device', 'd', '--model', 'vad', '--version', '1', '--file', model, '--key', rsa]);
    assert.equal(k.code, 2);
    assert.match(k.stderr, /--sign-key/);
  });

  test('sign and push refuse a --chunk-size devices refuse (PERCH_ERR_MODEL_CHUNK_SIZE_INVALID): over a million chunks, or chunks over 4 MiB', async () => {
    const dir = temp.make();
    const priv = join(dir, 'k.pem');
    writeFileSync(priv, generateSigningKeyPair().privateKeyPem);
    const model = join(dir, 'model.onnx');
    writeFileSync(model, Buffer.alloc(5 * 1024 * 1024, 7));
    const args = ['--sign-key', priv, '--name', 'vad', '--version', '1', '--file', model];
    for (const size of ['4', String(8 * 1024 * 1024)]) {
      const s = await fleet(['sign', ...args, '--chunk-size', size]);
      assert.equal(s.code, 1, s.stderr);
      assert.match(s.stderr, /PERCH_ERR_MODEL_CHUNK_SIZE_INVALID/);
      const p = await fleet(['push', '--url', 'mqtt://127.0.0.1:9', '--store', dir, '--device', 'd', '--model', 'vad', ...args.slice(4), '--sign-key', priv, '--chunk-size', size]);
      assert.equal(p.code, 1, p.stderr);
      assert.match(p.stderr, /PERCH_ERR_MODEL_CHUNK_SIZE_INVALID/);
    }
    // One chunk of the whole file, and the default, are fine.
    assert.equal((await fleet(['sign', ...args, '--chunk-size', String(4 * 1024 * 1024)])).code, 0);
    assert.equal((await fleet(['sign', ...args])).code, 0);
  });

  test('sign without --key, or with a bad version, is a usage error (exit 2)', async () => {
    assert.equal((await fleet(['sign', '--name', 'vad', '--version', '1', '--file', 'x'])).code, 2);
    assert.equal((await fleet(['sign', '--key', 'k', '--name', 'vad', '--version', '0', '--file', 'x'])).code, 2);
    const help = await fleet(['sign', '--help']);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /perch fleet sign/);
  });
});
