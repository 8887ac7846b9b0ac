// `perch fleet sign`: prints the ModelSpec of a model file, signed, without touching the broker.
import { parseArgs } from 'node:util';
import { modelNameArg, optionalIntArg, positiveIntArg, requireString } from '../cli/args.js';
import { buildSpec } from '../store/model-spec.js';

export const SIGN_HELP = `perch fleet sign --sign-key PRIV.pem --name NAME --version N --file MODEL.onnx
                 [--config model.json] [--chunk-size BYTES]

Prints the model's ModelSpec as JSON: {"version","sha256","size","chunkSize","manifest",
"signature"[,"config"],"chunkDigests"} (chunkDigests: each chunk's SHA-256, base64, for files
of at most 32,768 chunks; not signed; devices drop a chunk that does not match). The signature is Ed25519 over signed manifest 2:
JSON.stringify({manifest: 2, name, version, sha256, size, configSha256}), configSha256 being the
SHA-256 of the model.json's canonical JSON (keys sorted) or null (docs/cloud-sync.md,
"Signatures"); devices verify it against their trusted public keys. --sign-key must be an
Ed25519 private key (perch fleet keygen), else PERCH_ERR_SIGNING_KEY_INVALID. (--key is
accepted as another name for --sign-key here; push keeps --key for the TLS client key.)
`;

export async function signCommand(args: string[], out: NodeJS.WritableStream): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      'sign-key': { type: 'string' }, key: { type: 'string' }, name: { type: 'string' }, version: { type: 'string' }, file: { type: 'string' },
      'chunk-size': { type: 'string' }, config: { type: 'string' }, help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    out.write(SIGN_HELP);
    return 0;
  }
  const spec = await buildSpec({
    name: modelNameArg(values.name, 'name'),
    version: positiveIntArg(values.version, 'version'),
    file: requireString(values.file, 'file'),
    keyFile: requireString(values['sign-key'] ?? values.key, 'sign-key'),
    chunkSize: optionalIntArg(values['chunk-size'], 'chunk-size'),
    configFile: values.config,
  });
  out.write(`${JSON.stringify(spec)}\n`);
  return 0;
}
