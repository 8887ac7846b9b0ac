// A web page in any browser that can reach the device must not be able to use its API
// (docs/security.md): cross-origin POSTs (a text/plain "simple" request needs no preflight) and
// WebSocket upgrades from foreign origins are refused 403 PERCH_ERR_ORIGIN_FORBIDDEN, and a Host
// that names a foreign site (DNS rebinding: the site's name now resolves to the device) is
// refused 403 PERCH_ERR_HOST_FORBIDDEN. Programs that send no Origin are not affected.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { parseConfig } from '../../runtime/config/load.js';
import { MODEL_FILES } from '../helpers/paths.js';
import { TempRepository } from '../helpers/repository.js';
import { startRuntime, type TestRuntime } from '../helpers/runtime.js';
import { vadModelJson } from '../helpers/scenarios.js';
import { rawRequest, upgradeAnswer } from '../helpers/wire.js';

describe('browser guard: Origin and Host', () => {
  let repo: TempRepository;
  let rt: TestRuntime;
  let port: number;

  before(async () => {
    repo = new TempRepository({
      vad: { versions: { 1: MODEL_FILES.sileroVad16k }, config: vadModelJson(8) },
      spare: { versions: { 1: MODEL_FILES.sileroVad16k }, config: vadModelJson(8) },
    });
    rt = await startRuntime(repo.dir, { server: { allowedHosts: ['perch-kitchen.local'], allowedOrigins: ['http://app.example:3000'] } });
    port = rt.runtime.address.port;
  });
  after(async () => {
    await rt?.stop();
    repo?.remove();
  });

  const ready = async (model: string): Promise<number> => (await rawRequest(rt.baseUrl, 'GET', `/v2/models/${model}/ready`)).status;

  describe('Origin on state-changing HTTP requests', () => {
    test('a text/plain POST from a foreign page to unload: 403 PERCH_ERR_ORIGIN_FORBIDDEN, and the model still serves', async () => {
      const res = await rawRequest(rt.baseUrl, 'POST', '/v2/repository/models/vad/unload', {
        body: '{}', headers: { 'content-type': 'text/plain', origin: 'http://evil.example' },
      });
      assert.equal(res.status, 403, res.text);
      assert.equal(res.json?.code, 'PERCH_ERR_ORIGIN_FORBIDDEN');
      assert.equal(await ready('vad'), 200);
    });
    test('inference and repository index from a foreign page: 403', async () => {
      for (const path of ['/v2/models/vad/infer', '/v2/repository/index', '/v2/repository/models/vad/load']) {
        const res = await rawRequest(rt.baseUrl, 'POST', path, { body: '{}', headers: { 'content-type': 'text/plain', origin: 'http://evil.example:8080' } });
        assert.equal(res.status, 403, path);
        assert.equal(res.json?.code, 'PERCH_ERR_ORIGIN_FORBIDDEN', path);
      }
    });
    test('Origin: null (sandboxed frame, file:// page) and a malformed Origin: 403', async () => {
      for (const origin of ['null', 'not a url']) {
        const res = await rawRequest(rt.baseUrl, 'POST', '/v2/repository/index', { headers: { origin } });
        assert.equal(res.status, 403, origin);
        assert.equal(res.json?.code, 'PERCH_ERR_ORIGIN_FORBIDDEN', origin);
      }
    });
    test('the same origin, a configured origin and no Origin at all: allowed', async () => {
      for (const headers of [{ origin: `http://127.0.0.1:${port}` }, { origin: 'http://app.example:3000' }, {}] as Array<Record<string, string>>) {
        const res = await rawRequest(rt.baseUrl, 'POST', '/v2/repository/index', { headers });
        assert.equal(res.status, 200, JSON.stringify(headers));
      }
      // A configured origin may change state: it unloads a model.
      const res = await rawRequest(rt.baseUrl, 'POST', '/v2/repository/models/spare/unload', { body: '{}', headers: { 'content-type': 'text/plain', origin: 'http://app.example:3000' } });
      assert.equal(res.status, 200, res.text);
      assert.notEqual(await ready('spare'), 200);
    });
    test('the same host on another port or scheme is another origin: 403', async () => {
      for (const origin of [`http://127.0.0.1:${port + 1}`, 'https://app.example:3000', 'http://app.example']) {
        const res = await rawRequest(rt.baseUrl, 'POST', '/v2/repository/index', { headers: { origin } });
        assert.equal(res.status, 403, origin);
      }
    });
    test('reads from a foreign page are not refused (without CORS headers the page cannot read them)', async () => {
      const res = await rawRequest(rt.baseUrl, 'GET', '/v2/models/vad', { headers: { origin: 'http://evil.example' } });
      assert.equal(res.status, 200);
      assert.equal(res.headers['access-control-allow-origin'], undefined);
    });
  });

  describe('Origin on WebSocket upgrades', () => {
    test('a foreign origin: 403 PERCH_ERR_ORIGIN_FORBIDDEN', async () => {
      for (const origin of ['http://evil.example', 'null']) {
        const res = await upgradeAnswer(rt.wsUrl, { origin });
        assert.equal(res.status, 403, origin);
        assert.equal(res.json?.code, 'PERCH_ERR_ORIGIN_FORBIDDEN', origin);
      }
    });
    test('the same origin, a configured origin and no Origin: accepted', async () => {
      assert.equal((await upgradeAnswer(rt.wsUrl, { origin: `http://127.0.0.1:${port}` })).status, 101);
      assert.equal((await upgradeAnswer(rt.wsUrl, { origin: 'http://app.example:3000' })).status, 101);
      assert.equal((await upgradeAnswer(rt.wsUrl)).status, 101);
    });
  });

  describe('Host (DNS rebinding)', () => {
    const rebound = { host: 'evil.example:8080', origin: 'http://evil.example:8080' };
    test('a rebound name, same-origin as far as the browser knows: HTTP 403 PERCH_ERR_HOST_FORBIDDEN', async () => {
      const post = await rawRequest(rt.baseUrl, 'POST', '/v2/repository/models/vad/unload', { body: '{}', headers: { 'content-type': 'text/plain', ...rebound } });
      assert.equal(post.status, 403);
      assert.equal(post.json?.code, 'PERCH_ERR_HOST_FORBIDDEN');
      const get = await rawRequest(rt.baseUrl, 'GET', '/v2/models/vad', { headers: { host: 'evil.example:8080' } });
      assert.equal(get.status, 403);
      assert.equal(get.json?.code, 'PERCH_ERR_HOST_FORBIDDEN');
      assert.equal(await ready('vad'), 200);
    });
    test('a rebound name on a WebSocket upgrade: 403 PERCH_ERR_HOST_FORBIDDEN', async () => {
      const res = await upgradeAnswer(rt.wsUrl, rebound);
      assert.equal(res.status, 403);
      assert.equal(res.json?.code, 'PERCH_ERR_HOST_FORBIDDEN');
    });
    test('IP addresses, localhost, *.localhost and configured names: allowed', async () => {
      for (const host of [`127.0.0.1:${port}`, `localhost:${port}`, 'LOCALHOST', `app.localhost:${port}`, `[::1]:${port}`, '192.168.1.20:8080', `perch-kitchen.local:${port}`, 'Perch-Kitchen.Local.']) {
        const res = await rawRequest(rt.baseUrl, 'GET', '/v2/models/vad', { headers: { host } });
        assert.equal(res.status, 200, host);
      }
      const same = `http://perch-kitchen.local:${port}`;
      assert.equal((await upgradeAnswer(rt.wsUrl, { host: `perch-kitchen.local:${port}`, origin: same })).status, 101);
    });
    test('a foreign Host right after an allowed one, alternately: 403 each time (the last allowed Host is kept, request-guard.ts)', async () => {
      for (let i = 0; i < 2; i++) {
        assert.equal((await rawRequest(rt.baseUrl, 'GET', '/v2/models/vad', { headers: { host: `127.0.0.1:${port}` } })).status, 200);
        const res = await rawRequest(rt.baseUrl, 'GET', '/v2/models/vad', { headers: { host: 'evil.example:8080' } });
        assert.equal(res.status, 403);
        assert.equal(res.json?.code, 'PERCH_ERR_HOST_FORBIDDEN');
        assert.equal((await rawRequest(rt.baseUrl, 'GET', '/v2/models/vad', { headers: { host: `perch-kitchen.local:${port}` } })).status, 200);
        assert.equal((await rawRequest(rt.baseUrl, 'GET', '/v2/models/vad', { headers: { host: `evil.localhost.example:${port}` } })).status, 403);
      }
    });
    test('health checks answer whatever the Host (probes and load balancers use many names)', async () => {
      assert.equal((await rawRequest(rt.baseUrl, 'GET', '/v2/health/ready', { headers: { host: 'evil.example' } })).status, 200);
    });
    test('a Host that is not a host name: 403', async () => {
      const res = await rawRequest(rt.baseUrl, 'GET', '/v2/models/vad', { headers: { host: 'a b@c' } });
      assert.equal(res.status, 403);
    });
  });

  test('config: allowedOrigins must be origins, allowedHosts host names', () => {
    assert.throws(() => parseConfig({ server: { allowedOrigins: ['http://app.example/path'] } }), /server\.allowedOrigins\.0/);
    assert.throws(() => parseConfig({ server: { allowedOrigins: ['*'] } }), /server\.allowedOrigins\.0/);
    assert.throws(() => parseConfig({ server: { allowedHosts: ['perch.local:8080'] } }), /server\.allowedHosts\.0/);
    assert.deepEqual(parseConfig({ server: { allowedOrigins: ['https://app.example:8443'] } }).server.allowedOrigins, ['https://app.example:8443']);
  });
});
