// The shipped container config is safe by default (docs/security.md): the image's perch.json
// binds beyond loopback (it must, to be reachable through a published port) and sets no token,
// so the runtime generates one instead of serving an open API; compose publishes the port on the
// device's loopback only and sets no placeholder token.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { isLoopbackHost, resolveApiToken } from '../../runtime/api/api-token.js';
import { loadConfig } from '../../runtime/config/load.js';
import { silentLogger } from '../../runtime/base/log.js';
import { REPO_ROOT } from '../helpers/paths.js';

test('packaging/perch.json never serves an open API: beyond loopback, so a token is generated', () => {
  const config = loadConfig({ configPath: join(REPO_ROOT, 'packaging', 'perch.json'), env: {} });
  assert.equal(isLoopbackHost(config.server.host), false, 'the image binds beyond loopback');
  const dataDir = mkdtempSync(join(tmpdir(), 'perch-image-data-'));
  try {
    const r = resolveApiToken(config.server, dataDir, silentLogger());
    assert.equal(r.source, config.server.apiToken === null ? 'generated' : 'config');
    assert.ok(r.token !== null && r.token.length >= 8);
    if (r.file) assert.equal(statSync(r.file).mode & 0o777, 0o600);
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
});

test('packaging/compose.yaml publishes Perch on the device loopback only, with no placeholder token', () => {
  const compose = readFileSync(join(REPO_ROOT, 'packaging', 'compose.yaml'), 'utf8');
  const lines = compose.split('\n');
  const at = lines.findIndex((l) => /^\s+ports:\s*$/.test(l));
  assert.ok(at >= 0, 'perch publishes a port');
  const published: string[] = [];
  for (let i = at + 1; i < lines.length && /^\s+- /.test(lines[i] as string); i++) published.push((lines[i] as string).replace(/#.*/, '').trim());
  assert.ok(published.length > 0);
  for (const p of published) assert.match(p, /^- "127\.0\.0\.1:\d+:\d+"$/, `published on loopback: ${p}`);
  assert.doesNotMatch(compose, /^\s+PERCH_API_TOKEN:/m, 'no token set in the file (a copied placeholder would be a shared secret)');
});
