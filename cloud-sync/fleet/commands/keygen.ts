// `perch fleet keygen --out DIR`: the Ed25519 key pair that signs models. The private key is
// written 0600 (and refused if it already exists: overwriting a signing key strands a fleet).
import { chmodSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { generateSigningKeyPair } from '../../protocol/signing.js';
import { UsageError } from '../cli/options.js';

export const KEYGEN_HELP = `perch fleet keygen --out DIR [--force]

Writes an Ed25519 key pair as PEM: DIR/signing-key.pem (private, mode 0600) and
DIR/signing-key.pub.pem (public: give it to devices as PERCH_TRUSTED_KEYS).
An existing private key is never overwritten unless --force is given.
`;

export const PRIVATE_KEY_FILE = 'signing-key.pem';
export const PUBLIC_KEY_FILE = 'signing-key.pub.pem';

export function keygen(args: string[], out: NodeJS.WritableStream): number {
  const { values } = parseArgs({ args, options: { out: { type: 'string' }, force: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } } });
  if (values.help) {
    out.write(KEYGEN_HELP);
    return 0;
  }
  if (!values.out) throw new UsageError('keygen needs --out DIR');
  const dir = resolve(values.out);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const priv = join(dir, PRIVATE_KEY_FILE);
  const pub = join(dir, PUBLIC_KEY_FILE);
  if (existsSync(priv) && !values.force) throw new UsageError(`${priv} exists; pass --force to replace it`);
  const pair = generateSigningKeyPair();
  // 'w' with mode applies only on creation; --force over an older, wider file is chmod-ed below.
  writeFileSync(priv, pair.privateKeyPem, { mode: 0o600 });
  writeFileSync(pub, pair.publicKeyPem, { mode: 0o644 });
  chmodSync(priv, 0o600);
  out.write(`${priv}\n${pub}\n`);
  return 0;
}
