// With server.apiToken set (docs/protocol.md sections 3-4): the WebSocket upgrade needs the token as
// `Authorization: Bearer` or `?token=` (else 401), HTTP inference needs the bearer header (else
// 401 PERCH_ERR_UNAUTHORIZED; the scheme in any case, RFC 9110 section 11.1), and the health
// checks answer without it.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { httpInfer, WsClient } from '../helpers/clients.js';
import { vadInputs } from '../helpers/models.js';
import { MODEL_FILES } from '../helpers/paths.js';
import { TempRepository } from '../helpers/repository.js';
import { startRuntime, type TestRuntime } from '../helpers/runtime.js';
import { vadModelJson } from '../helpers/scenarios.js';
import { rawRequest, upgradeStatus } from '../helpers/wire.js';

const TOKEN = 'edge-secret-0123456789';

describe('API token', () => {
  let repo: TempRepository;
  let rt: TestRuntime;

  before(async () => {
    repo = new TempRepository({ vad: { versions: { 1: MODEL_FILES.sileroVad16k }, config: vadModelJson(8) } });
    rt = await startRuntime(repo.dir, { server: { apiToken: TOKEN } });
  });
  after(async () => {
    await rt?.stop();
    repo?.remove();
  });

  describe('WebSocket upgrade', () => {
    test('without a token: 401', async () => {
      assert.equal(await upgradeStatus(rt.wsUrl), 401);
    });
    test('with a wrong bearer token: 401', async () => {
      assert.equal(await upgradeStatus(rt.wsUrl, { authorization: `Bearer ${TOKEN}x` }), 401);
      assert.equal(await upgradeStatus(rt.wsUrl, { authorization: 'Bearer ' }), 401);
      assert.equal(await upgradeStatus(rt.wsUrl, { authorization: `Bearer ${TOKEN.slice(0, -1)}` }), 401, 'a prefix of the token');
    });
    test('with a wrong ?token=: 401', async () => {
      assert.equal(await upgradeStatus(`${rt.wsUrl}?token=nope`), 401);
      assert.equal(await upgradeStatus(`${rt.wsUrl}?token=`), 401);
    });
    test('with a token in another scheme: 401', async () => {
      assert.equal(await upgradeStatus(rt.wsUrl, { authorization: `Basic ${Buffer.from(`perch:${TOKEN}`).toString('base64')}` }), 401);
      assert.equal(await upgradeStatus(rt.wsUrl, { authorization: TOKEN }), 401);
    });
    test('with Authorization: Bearer: accepted, and it serves', async () => {
      const ws = await WsClient.connect(rt.wsUrl, { token: TOKEN });
      try {
        const a = await ws.infer('vad', vadInputs(1));
        assert.equal(a.ok, true, JSON.stringify(a.body));
      } finally {
        await ws.close();
      }
    });
    test('with the scheme in lower or upper case: accepted (RFC 9110 section 11.1)', async () => {
      assert.equal(await upgradeStatus(rt.wsUrl, { authorization: `bearer ${TOKEN}` }), 101);
      assert.equal(await upgradeStatus(rt.wsUrl, { authorization: `BEARER ${TOKEN}` }), 101);
    });
    test('with ?token=: accepted, and it serves', async () => {
      assert.equal(await upgradeStatus(`${rt.wsUrl}?token=${encodeURIComponent(TOKEN)}`), 101);
      const ws = await WsClient.connect(`${rt.wsUrl}?token=${encodeURIComponent(TOKEN)}`);
      try {
        const a = await ws.infer('vad', vadInputs(2));
        assert.equal(a.ok, true, JSON.stringify(a.body));
      } finally {
        await ws.close();
      }
    });
  });

  describe('HTTP', () => {
    test('inference without a token: 401 PERCH_ERR_UNAUTHORIZED', async () => {
      const res = await httpInfer(rt.baseUrl, 'vad', vadInputs(3));
      assert.equal(res.status, 401);
      assert.equal(res.body.code, 'PERCH_ERR_UNAUTHORIZED');
    });
    test('inference with a wrong token: 401 PERCH_ERR_UNAUTHORIZED', async () => {
      const res = await httpInfer(rt.baseUrl, 'vad', vadInputs(3), { token: 'not-the-token' });
      assert.equal(res.status, 401);
      assert.equal(res.body.code, 'PERCH_ERR_UNAUTHORIZED');
    });
    test('?token= is for WebSocket clients only: HTTP inference with it is refused', async () => {
      const res = await rawRequest(rt.baseUrl, 'POST', `/v2/models/vad/infer?token=${TOKEN}`, { body: '{}', headers: { 'content-type': 'application/json' } });
      assert.equal(res.status, 401);
      assert.equal(res.json?.code, 'PERCH_ERR_UNAUTHORIZED');
    });
    test('inference with the token: 200', async () => {
      const res = await httpInfer(rt.baseUrl, 'vad', vadInputs(3), { token: TOKEN });
      assert.equal(res.status, 200, JSON.stringify(res.body));
    });
    test('model metadata and the repository need the token too', async () => {
      assert.equal((await rawRequest(rt.baseUrl, 'GET', '/v2/models/vad')).status, 401);
      assert.equal((await rawRequest(rt.baseUrl, 'POST', '/v2/repository/index')).status, 401);
      assert.equal((await rawRequest(rt.baseUrl, 'GET', '/v2/models/vad', { headers: { authorization: `Bearer ${TOKEN}` } })).status, 200);
    });
    test('the scheme in any case (RFC 9110 section 11.1): bearer, BEARER, bEaReR', async () => {
      for (const scheme of ['bearer', 'BEARER', 'bEaReR']) {
        const res = await rawRequest(rt.baseUrl, 'GET', '/v2/models/vad', { headers: { authorization: `${scheme} ${TOKEN}` } });
        assert.equal(res.status, 200, `${scheme}: ${res.text}`);
        assert.equal((await rawRequest(rt.baseUrl, 'GET', '/v2/models/vad', { headers: { authorization: `${scheme} ${TOKEN}x` } })).status, 401, `${scheme} with a wrong token`);
      }
      assert.equal((await rawRequest(rt.baseUrl, 'GET', '/v2/models/vad', { headers: { authorization: `bearer${TOKEN}` } })).status, 401, 'no space after the scheme');
      assert.equal((await rawRequest(rt.baseUrl, 'GET', '/v2/models/vad', { headers: { authorization: `bearers ${TOKEN}` } })).status, 401, 'another scheme');
    });
    test('/v2/health/live and /v2/health/ready answer without a token', async () => {
      const live = await rawRequest(rt.baseUrl, 'GET', '/v2/health/live');
      assert.equal(live.status, 200);
      assert.deepEqual(live.json, { live: true });
      const ready = await rawRequest(rt.baseUrl, 'GET', '/v2/health/ready');
      assert.equal(ready.status, 200);
      assert.deepEqual(ready.json, { ready: true });
    });
  });

  // The expected token's digest is kept while the token stays the same (auth.ts): a process
  // serving two tokens (here two runtimes) checks each request against its own, in any order.
  describe('two runtimes with different tokens in one process', () => {
    const OTHER = 'another-edge-secret-9876';
    let repo2: TempRepository;
    let rt2: TestRuntime;
    before(async () => {
      repo2 = new TempRepository({ vad: { versions: { 1: MODEL_FILES.sileroVad16k }, config: vadModelJson(8) } });
      rt2 = await startRuntime(repo2.dir, { server: { apiToken: OTHER } });
    });
    after(async () => {
      await rt2?.stop();
      repo2?.remove();
    });
    test('each accepts its own token and refuses the other, alternately', async () => {
      const status = async (base: string, token: string) => (await rawRequest(base, 'GET', '/v2/models/vad', { headers: { authorization: `Bearer ${token}` } })).status;
      for (let i = 0; i < 2; i++) {
        assert.equal(await status(rt.baseUrl, TOKEN), 200);
        assert.equal(await status(rt2.baseUrl, TOKEN), 401);
        assert.equal(await status(rt2.baseUrl, OTHER), 200);
        assert.equal(await status(rt.baseUrl, OTHER), 401);
      }
    });
  });
});
