// A server bound beyond loopback never starts open (docs/security.md): without server.apiToken
// it generates a token once into <dataDir>/api-token (mode 0600), logs the file's path (not the
// token), and reuses the file on every start; when the file cannot be written or read it refuses
// to start with PERCH_ERR_API_TOKEN_UNAVAILABLE. Loopback-only servers need no token.
// (Tests never bind beyond loopback: the decision and the file are tested here, and the refusal
// of a real `perch serve` process, which happens before it listens.)
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, describe, test } from 'node:test';
import { API_TOKEN_FILE, isLoopbackHost, resolveApiToken } from '../../runtime/api/api-token.js';
import { PerchError } from '../../runtime/base/errors.js';
import { createLogger, silentLogger } from '../../runtime/base/log.js';
import { CLI, cleanEnv } from '../helpers/perch-process.js';
import { Child } from '../helpers/wire.js';

describe('API token for a server beyond loopback', () => {
  const temp: string[] = [];
  const tmp = (): string => {
    const d = mkdtempSync(join(tmpdir(), 'perch-token-'));
    temp.push(d);
    return d;
  };
  after(() => {
    for (const d of temp) rmSync(d, { recursive: true, force: true });
  });

  test('loopback addresses and names are told from everything else', () => {
    for (const h of ['127.0.0.1', '127.3.2.1', 'localhost', 'LOCALHOST', '::1', '[::1]', '0:0:0:0:0:0:0:1', '::ffff:127.0.0.1']) assert.equal(isLoopbackHost(h), true, h);
    for (const h of ['0.0.0.0', '::', '[::]', '192.168.1.20', '10.0.0.1', 'fe80::1', '::ffff:10.0.0.1', 'perch.local', 'localhost.example.com', '128.0.0.1']) assert.equal(isLoopbackHost(h), false, h);
  });

  test('loopback without a token: none; a configured token is used as it is', () => {
    const dir = tmp();
    assert.deepEqual(resolveApiToken({ host: '127.0.0.1', apiToken: null }, dir, silentLogger()), { token: null, source: 'none', file: null });
    assert.deepEqual(resolveApiToken({ host: '0.0.0.0', apiToken: 'configured-secret' }, dir, silentLogger()), { token: 'configured-secret', source: 'config', file: null });
    assert.throws(() => statSync(join(dir, API_TOKEN_FILE)), /ENOENT/, 'no file written');
  });

  test('beyond loopback without a token: one is generated into the data dir, 0600, its path logged, and reused', () => {
    const dataDir = join(tmp(), 'data'); // not there yet: created like the store creates it
    let logged = '';
    const log = createLogger('info', new Writable({ write: (chunk: Buffer, _e, cb) => { logged += chunk.toString(); cb(); } }));
    const first = resolveApiToken({ host: '0.0.0.0', apiToken: null }, dataDir, log);
    const file = join(dataDir, API_TOKEN_FILE);
    assert.equal(first.source, 'generated');
    assert.equal(first.file, file);
    assert.ok(first.token !== null && first.token.length >= 40, 'a long random token');
    assert.equal(readFileSync(file, 'utf8').trim(), first.token);
    assert.equal(statSync(file).mode & 0o777, 0o600);
    assert.equal(statSync(dataDir).mode & 0o777, 0o700);
    assert.match(logged, new RegExp(file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')), 'the file is named in the log');
    assert.ok(!logged.includes(first.token), 'the token itself is not logged');

    const again = resolveApiToken({ host: '192.168.1.20', apiToken: null }, dataDir, silentLogger());
    assert.deepEqual(again, { token: first.token, source: 'file', file });
    const other = resolveApiToken({ host: '0.0.0.0', apiToken: null }, tmp(), silentLogger());
    assert.notEqual(other.token, first.token, 'every device its own token');
  });

  test('a token file others can read is made 0600; an operator-written token is used', () => {
    const dataDir = tmp();
    const file = join(dataDir, API_TOKEN_FILE);
    writeFileSync(file, 'operator-chosen-token\n');
    chmodSync(file, 0o644);
    const r = resolveApiToken({ host: '::', apiToken: null }, dataDir, silentLogger());
    assert.deepEqual(r, { token: 'operator-chosen-token', source: 'file', file });
    assert.equal(statSync(file).mode & 0o777, 0o600);
  });

  test('a token file that is empty, too short or not a file: PERCH_ERR_API_TOKEN_UNAVAILABLE', () => {
    for (const content of ['', 'short\n', 'two words here\n']) {
      const dataDir = tmp();
      writeFileSync(join(dataDir, API_TOKEN_FILE), content, { mode: 0o600 });
      assert.throws(() => resolveApiToken({ host: '0.0.0.0', apiToken: null }, dataDir, silentLogger()), (e: unknown) => e instanceof PerchError && e.code === 'PERCH_ERR_API_TOKEN_UNAVAILABLE', JSON.stringify(content));
    }
  });

  test('perch serve beyond loopback where no token can be written: exit 1 with PERCH_ERR_API_TOKEN_UNAVAILABLE, before listening', async () => {
    const base = tmp();
    const blocker = join(base, 'a-file');
    writeFileSync(blocker, 'not a directory');
    // The data dir lies under a regular file: it cannot be created, whoever runs the test.
    const child = Child.spawn(process.execPath, [CLI, 'serve'], {
      env: cleanEnv({ PERCH_HOST: '0.0.0.0', PERCH_PORT: '0', PERCH_DATA_DIR: join(blocker, 'data'), PERCH_LOG_LEVEL: 'info' }),
      cwd: base,
    });
    try {
      const { code } = await child.exited;
      assert.equal(code, 1, child.stdout + child.stderr);
      assert.match(child.stderr, /PERCH_ERR_API_TOKEN_UNAVAILABLE/);
      assert.match(child.stderr, /PERCH_API_TOKEN/, 'it says how to fix it');
      assert.ok(!child.logLines().some((l) => l.msg === 'perch is serving'), 'it never listened');
    } finally {
      await child.kill();
    }
  });
});
