// The API token a non-loopback server must have (docs/security.md "Who can reach the API").
// Bound to loopback only, the device's own programs are the only callers and no token is needed.
// Bound anywhere else with no `server.apiToken`, Perch does not start open: it generates a token
// once, keeps it in the data directory (mode 0600, beside the store it protects) and logs the
// file's path (never the token: logs leave the device). The same file is used on every start,
// so clients configured once keep working.
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { BlockList, isIP } from 'node:net';
import { join } from 'node:path';
import { PerchError } from '../base/errors.js';
import type { Logger } from '../base/log.js';

export const API_TOKEN_FILE = 'api-token';

const FIX = ': set server.apiToken (PERCH_API_TOKEN), or bind to loopback, or fix the data directory';

export type ApiTokenSource = 'config' | 'file' | 'generated' | 'none';

export interface ResolvedApiToken {
  token: string | null;
  source: ApiTokenSource;
  /** The token file, when the token came from (or went into) one. */
  file: string | null;
}

const LOOPBACK = new BlockList();
LOOPBACK.addSubnet('127.0.0.0', 8, 'ipv4');
LOOPBACK.addAddress('::1', 'ipv6');

/** `localhost`, 127.0.0.0/8 or ::1 (IPv4-mapped too): only this machine can connect. */
export function isLoopbackHost(host: string): boolean {
  const h = host.toLowerCase().replace(/^\[(.*)\]$/, '$1');
  if (h === 'localhost') return true;
  const family = isIP(h);
  return family !== 0 && LOOPBACK.check(h, family === 4 ? 'ipv4' : 'ipv6');
}

export function resolveApiToken(server: { host: string; apiToken: string | null }, dataDir: string, log: Logger): ResolvedApiToken {
  if (server.apiToken !== null) return { token: server.apiToken, source: 'config', file: null };
  if (isLoopbackHost(server.host)) return { token: null, source: 'none', file: null };
  const file = join(dataDir, API_TOKEN_FILE);
  const existing = readTokenFile(file, log);
  if (existing !== null) return { token: existing, source: 'file', file };
  const token = randomBytes(32).toString('base64url');
  try {
    mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    // 'wx': never overwrite a file another process wrote meanwhile; 0600: only Perch's user reads it.
    writeFileSync(file, `${token}\n`, { mode: 0o600, flag: 'wx' });
  } catch (err) {
    throw new PerchError(
      'PERCH_ERR_API_TOKEN_UNAVAILABLE',
      `server.host ${server.host} is not loopback, so the API needs a token, and none could be written to ${file} (${(err as Error).message})${FIX}`,
      { cause: err },
    );
  }
  log.warn({ host: server.host, tokenFile: file }, 'the API listens beyond loopback and no server.apiToken is set: generated one; clients send "Authorization: Bearer <the file\'s contents>"');
  return { token, source: 'generated', file };
}

/** The token in `file`, or null when there is no file yet. A file others may read is made 0600. */
function readTokenFile(file: string, log: Logger): string | null {
  let text: string;
  try {
    const st = statSync(file);
    if (!st.isFile()) throw new PerchError('PERCH_ERR_API_TOKEN_UNAVAILABLE', `the API token file ${file} is not a regular file${FIX}`);
    if ((st.mode & 0o077) !== 0) {
      chmodSync(file, 0o600);
      log.warn({ tokenFile: file, mode: (st.mode & 0o777).toString(8) }, 'the API token file was readable by others: made it 0600');
    }
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    if (err instanceof PerchError) throw err;
    throw new PerchError('PERCH_ERR_API_TOKEN_UNAVAILABLE', `cannot read the API token file ${file} (${(err as Error).message})${FIX}`, { cause: err });
  }
  const token = text.trim();
  if (token.length < 8 || /\s/.test(token)) {
    throw new PerchError('PERCH_ERR_API_TOKEN_UNAVAILABLE', `the API token file ${file} must hold one token of 8 or more characters without spaces (delete it to have a new one generated)${FIX}`);
  }
  return token;
}
