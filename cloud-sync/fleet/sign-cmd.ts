// `perch fleet sign`: prints the ModelSpec of a model file, signed, without touching the broker.
import { parseArgs } from 'node:util';
import { modelNameArg, optionalIntArg, positiveIntArg, requireString } from './args.js';
import { buildSpec } from './spec.js';

export const SIGN_HELP = `perch fleet sign --key PRIV.pem --name NAME --version N --file MODEL.onnx [--chunk-size BYTES]

Prints the model's ModelSpec as JSON: {"version","sha256","size","chunkSize","signature"}.
The signature is Ed25519 over the UTF-8 bytes of JSON.stringify({name, version, sha256, size})
(docs/protocol.md section 5); devices verify it against their trusted public keys.
`;

export async function signCommand(args: string[], out: NodeJS.WritableStream): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      key: { type: 'string' }, name: { type: 'string' }, version: { type: 'string' }, file: { type: 'string' },
      'chunk-size': { type: 'string' }, help: { type: 'boolean', short: 'h' },
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
    keyFile: requireString(values.key, 'key'),
    chunkSize: optionalIntArg(values['chunk-size'], 'chunk-size'),
  });
  out.write(`${JSON.stringify(spec)}\n`);
  return 0;
}
