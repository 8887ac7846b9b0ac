// A real PostgreSQL server for tests (docs/design.md house style 9), like mosquitto.ts: initdb
// into a temp dir, then `postgres` on a random free loopback port with its unix socket in the
// same dir, killed and removed at the end. PostgreSQL refuses to run as root: as root, both run as
// the `postgres` user (Debian's package creates it) through runuser, and the temp dir is chowned
// to it. Binaries: PERCH_TEST_PG_BIN, else PATH, else Debian's /usr/lib/postgresql/<major>/bin.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { freePort } from './free-port.js';
import { waitFor } from './wait.js';

export interface Postgres {
  /** postgres://perch@127.0.0.1:PORT/DB */
  readonly url: string;
  readonly port: number;
  /** A fresh, empty database on this server; returns its URL. */
  createDatabase(): Promise<string>;
  close(): Promise<void>;
}

function binDir(): string {
  if (process.env.PERCH_TEST_PG_BIN) return process.env.PERCH_TEST_PG_BIN;
  const onPath = spawnSync('sh', ['-c', 'command -v initdb'], { encoding: 'utf8' }).stdout.trim();
  if (onPath) return join(onPath, '..');
  const root = '/usr/lib/postgresql';
  const majors = existsSync(root) ? readdirSync(root).filter((d) => /^\d+$/.test(d)).sort((a, b) => Number(b) - Number(a)) : [];
  const found = majors.map((m) => join(root, m, 'bin')).find((d) => existsSync(join(d, 'initdb')));
  if (!found) {
    throw new Error('PostgreSQL not found: the PostgreSQL fleet-store tests run a real server. Install it (Debian/Ubuntu: `apt-get install postgresql`; .ci/run does) or set PERCH_TEST_PG_BIN to its bin folder.');
  }
  return found;
}

let dbCounter = 0;

/** `fsync: true` for benchmarks (tests run with fsync off: nothing there survives a power cut anyway). */
export async function startPostgres(opts: { fsync?: boolean } = {}): Promise<Postgres> {
  const bin = binDir();
  const asRoot = process.getuid?.() === 0;
  const dir = mkdtempSync(join(tmpdir(), 'perch-pg-'));
  const data = join(dir, 'data');
  if (asRoot) {
    const id = spawnSync('id', ['-u', 'postgres'], { encoding: 'utf8' });
    const gid = spawnSync('id', ['-g', 'postgres'], { encoding: 'utf8' });
    if (id.status !== 0) throw new Error('running as root and there is no `postgres` user to run PostgreSQL as');
    chownSync(dir, Number(id.stdout.trim()), Number(gid.stdout.trim()));
  }
  const run = (cmd: string, args: string[]): [string, string[]] => (asRoot ? ['runuser', ['-u', 'postgres', '--', cmd, ...args]] : [cmd, args]);
  const [initCmd, initArgs] = run(join(bin, 'initdb'), ['-D', data, '-U', 'perch', '-A', 'trust', '-E', 'UTF8', '--no-sync']);
  const init = spawnSync(initCmd, initArgs, { encoding: 'utf8' });
  if (init.status !== 0) throw new Error(`initdb failed: ${init.stderr}`);
  let child: ChildProcess | null = null;
  let port = 0;
  let log = '';
  for (let attempt = 0; attempt < 5 && !child; attempt++) {
    port = await freePort();
    const [cmd, args] = run(join(bin, 'postgres'), [
      '-D', data, '-p', String(port), '-k', dir, '-c', 'listen_addresses=127.0.0.1', '-c', `fsync=${opts.fsync ? 'on' : 'off'}`, '-c', 'max_connections=200',
    ]);
    const c = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    c.stderr?.setEncoding('utf8').on('data', (s: string) => (log += s));
    c.stdout?.resume();
    const exited = new Promise<boolean>((resolve) => c.once('exit', () => resolve(true)));
    const ready = waitFor(() => /ready to accept connections/.test(log) || c.exitCode !== null, 30_000, 'postgres ready').then(() => c.exitCode === null);
    if (await Promise.race([ready, exited.then(() => false)])) child = c;
  }
  if (!child) throw new Error(`postgres did not start:\n${log}`);
  const proc = child;
  const url = `postgres://perch@127.0.0.1:${port}/postgres`;
  return {
    url,
    port,
    async createDatabase() {
      const name = `perch_test_${process.pid}_${++dbCounter}`;
      const admin = new pg.Client({ connectionString: url });
      await admin.connect();
      try {
        await admin.query(`CREATE DATABASE ${name}`);
      } finally {
        await admin.end();
      }
      return `postgres://perch@127.0.0.1:${port}/${name}`;
    },
    async close() {
      if (proc.exitCode === null) {
        const gone = new Promise((resolve) => proc.once('exit', resolve));
        // pg_ctl as the server's user: runuser does not pass every signal on.
        const [cmd, args] = run(join(bin, 'pg_ctl'), ['stop', '-D', data, '-m', 'immediate', '-w']);
        spawnSync(cmd, args);
        await gone;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
