// Test PKI made with the real openssl CLI (the same way an operator would): a CA, a server
// certificate for 127.0.0.1/localhost, client certificates whose CN is the device id (what
// Mosquitto's use_identity_as_username turns into the ACL's %u), and one self-signed client
// certificate that no broker trusting the CA may accept.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface CertFiles {
  cert: string;
  key: string;
}

export interface TestPki {
  dir: string;
  /** CA certificate (PEM path). */
  ca: string;
  caKey: string;
  server: CertFiles;
  /** By CN: one per name asked for, signed by the CA. */
  clients: Record<string, CertFiles>;
  /** Signed by nobody but itself (CN `rogue`). */
  selfSigned: CertFiles;
  /** Deletes the directory. */
  cleanup(): void;
}

function openssl(args: string[], cwd: string): void {
  try {
    execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    throw new Error('openssl not found: the TLS tests make their certificates with the openssl CLI. Install it (Debian/Ubuntu: `apt-get install openssl`; .ci/run does).', { cause: err });
  }
}

// P-256 keys: generating them takes milliseconds where RSA takes seconds.
const NEW_KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
const DAYS = ['-days', '2'];

/** Generates the PKI into a fresh temp dir. `clientNames` become CNs (device ids, `perch-fleet`). */
export function createTestPki(clientNames: readonly string[]): TestPki {
  const dir = mkdtempSync(join(tmpdir(), 'perch-pki-'));
  try {
    openssl(['req', '-x509', ...NEW_KEY, '-keyout', 'ca.key', '-out', 'ca.crt', ...DAYS, '-subj', '/CN=perch-test-ca',
      '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'], dir);

    const issue = (name: string, file: string, ext: string): CertFiles => {
      writeFileSync(join(dir, `${file}.ext`), ext);
      openssl(['req', ...NEW_KEY, '-keyout', `${file}.key`, '-out', `${file}.csr`, '-subj', `/CN=${name}`], dir);
      openssl(['x509', '-req', '-in', `${file}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial',
        '-out', `${file}.crt`, ...DAYS, '-extfile', `${file}.ext`], dir);
      return { cert: join(dir, `${file}.crt`), key: join(dir, `${file}.key`) };
    };

    const server = issue('localhost', 'server',
      'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n');
    const clients: Record<string, CertFiles> = {};
    clientNames.forEach((name, i) => {
      clients[name] = issue(name, `client-${i}`, 'extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n');
    });

    openssl(['req', '-x509', ...NEW_KEY, '-keyout', 'rogue.key', '-out', 'rogue.crt', ...DAYS, '-subj', '/CN=rogue'], dir);
    return {
      dir,
      ca: join(dir, 'ca.crt'),
      caKey: join(dir, 'ca.key'),
      server,
      clients,
      selfSigned: { cert: join(dir, 'rogue.crt'), key: join(dir, 'rogue.key') },
      cleanup: () => rmSync(dir, { recursive: true, force: true }),
    };
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}
