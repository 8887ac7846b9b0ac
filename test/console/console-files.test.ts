// The web console's static files over real HTTP (docs/api.md "Web console"): `/` and
// /console/<name> from a fixed list, content types, ETag revalidation, HEAD, no escape from the
// folder, no token needed for the files (the page asks for it), Host still checked.
import assert from 'node:assert/strict';
import { readdirSync, statSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { REPO_ROOT } from '../helpers/paths.js';
import { TempRepository } from '../helpers/repository.js';
import { startRuntime } from '../helpers/runtime.js';

/** A GET or HEAD with the path sent as is (fetch would normalize `..` away). */
function raw(base: string, method: string, path: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
  const u = new URL(base);
  return new Promise((resolve, reject) => {
    const req = request({ host: u.hostname, port: u.port, method, path, headers }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (c: string) => (body += c)).on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.once('error', reject);
    req.end();
  });
}

describe('console files', () => {
  test('served from the fixed list with types, ETag and HEAD; everything else is a coded 404', async () => {
    const repo = new TempRepository();
    const rt = await startRuntime(repo.dir, { server: { apiToken: 'console-files-token' } });
    try {
      const index = await raw(rt.baseUrl, 'GET', '/');
      assert.equal(index.status, 200, 'the page itself needs no token');
      assert.equal(index.headers['content-type'], 'text/html; charset=utf-8');
      assert.match(index.body, /<script type="module" src="\/console\/app.js">/);
      assert.match(String(index.headers['content-security-policy']), /default-src 'self'/);
      assert.equal(index.headers['x-content-type-options'], 'nosniff');
      const types: Record<string, string> = { js: 'text/javascript; charset=utf-8', css: 'text/css; charset=utf-8', svg: 'image/svg+xml', html: 'text/html; charset=utf-8' };
      for (const name of readdirSync(join(REPO_ROOT, 'console'))) {
        const r = await raw(rt.baseUrl, 'GET', `/console/${name}`);
        assert.equal(r.status, 200, name);
        assert.equal(r.headers['content-type'], types[name.split('.').pop() as string], name);
        assert.equal(Number(r.headers['content-length']), statSync(join(REPO_ROOT, 'console', name)).size, name);
        assert.equal(r.headers['cache-control'], 'no-cache');
        const again = await raw(rt.baseUrl, 'GET', `/console/${name}`, { 'if-none-match': String(r.headers.etag) });
        assert.equal(again.status, 304, name);
        assert.equal(again.body, '');
      }
      const head = await raw(rt.baseUrl, 'HEAD', '/console/app.js');
      assert.equal(head.status, 200);
      assert.equal(head.body, '');
      assert.ok(Number(head.headers['content-length']) > 0);
      for (const path of ['/console/../package.json', '/console/..%2fpackage.json', '/console/%2e%2e%2fpackage.json', '/console/.hidden', '/console/', '/console/nope.js', '/index.html', '/console/app.js/x']) {
        const r = await raw(rt.baseUrl, 'GET', path);
        assert.equal(r.status, 404, path);
        assert.equal((JSON.parse(r.body) as { code: string }).code, 'PERCH_ERR_ROUTE_NOT_FOUND', path);
      }
      const post = await raw(rt.baseUrl, 'POST', '/');
      assert.equal(post.status, 405);
      const foreign = await raw(rt.baseUrl, 'GET', '/', { host: 'evil.example' });
      assert.equal(foreign.status, 403, 'DNS rebinding guard');
      // The data behind the page still needs the token.
      assert.equal((await raw(rt.baseUrl, 'GET', '/v1/status')).status, 401);
      assert.equal((await raw(rt.baseUrl, 'GET', '/v1/status', { authorization: 'Bearer console-files-token' })).status, 200);
    } finally {
      await rt.stop();
      repo.remove();
    }
  });
});
