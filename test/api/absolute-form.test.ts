// A request target in absolute form (RFC 9112 section 3.2.2: `POST http://device:8000/v2/...`,
// as sent to a proxy; a server MUST accept it, and take the target's authority in place of Host)
// is routed on its path, and its authority is checked as Host is (docs/security.md): a foreign
// authority is refused 403 PERCH_ERR_HOST_FORBIDDEN whatever Host says. It was answered 404.
// Raw sockets: Node's client sends origin-form targets only.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { vadInputs } from '../helpers/models.js';
import { MODEL_FILES } from '../helpers/paths.js';
import { head, RawHttp, type RawHttpAnswer } from '../helpers/raw-http.js';
import { TempRepository } from '../helpers/repository.js';
import { startRuntime, type TestRuntime } from '../helpers/runtime.js';
import { vadModelJson } from '../helpers/scenarios.js';
import { inferBody } from '../helpers/wire.js';

const TOKEN = 'absolute-token-0123';

describe('absolute-form request targets', () => {
  let repo: TempRepository;
  let rt: TestRuntime;
  let port: number;
  let controlPort: number;

  before(async () => {
    repo = new TempRepository({ vad: { versions: { 1: MODEL_FILES.sileroVad16k }, config: vadModelJson(8) } });
    rt = await startRuntime(repo.dir, { server: { apiToken: TOKEN, allowedHosts: ['perch-kitchen.local'], control: { port: 0 } } });
    port = rt.runtime.address.port;
    controlPort = rt.runtime.control?.port as number;
  });
  after(async () => {
    await rt?.stop();
    repo?.remove();
  });

  const auth = { authorization: `Bearer ${TOKEN}` };

  async function send(p: number, method: string, target: string, headers: Record<string, string | number>, body?: string): Promise<RawHttpAnswer> {
    const conn = await RawHttp.connect(p);
    try {
      const withBody = body === undefined ? headers : { ...headers, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) };
      conn.write(head(method, target, withBody) + (body ?? ''));
      return await conn.next();
    } finally {
      conn.destroy();
    }
  }

  test('POST http://127.0.0.1:<port>/v2/models/vad/infer: routed on its path and answered 200', async () => {
    const body = JSON.stringify(inferBody(vadInputs(1)));
    const a = await send(port, 'POST', `http://127.0.0.1:${port}/v2/models/vad/infer`, { host: `127.0.0.1:${port}`, ...auth }, body);
    assert.equal(a.status, 200, a.text);
    assert.ok(Array.isArray(a.json?.outputs));
  });

  test('the scheme in any case, a query, a configured name as the authority: 200', async () => {
    const a = await send(port, 'GET', `HTTP://perch-kitchen.local:${port}/v2/models/vad?verbose=1`, { host: `127.0.0.1:${port}`, ...auth });
    assert.equal(a.status, 200, a.text);
    assert.equal(a.json?.name, 'vad');
  });

  test('a foreign authority is refused as a foreign Host is, though Host names the device', async () => {
    const a = await send(port, 'GET', 'http://evil.example/v2/models/vad', { host: `127.0.0.1:${port}`, ...auth });
    assert.equal(a.status, 403, a.text);
    assert.equal(a.json?.code, 'PERCH_ERR_HOST_FORBIDDEN');
    const infer = await send(port, 'POST', `http://evil.example:${port}/v2/models/vad/infer`, { host: `127.0.0.1:${port}`, ...auth }, '{}');
    assert.equal(infer.status, 403, infer.text);
    // Host is what the RFC says to ignore: the authority decides.
    const hostForeign = await send(port, 'GET', `http://127.0.0.1:${port}/v2/models/vad`, { host: 'evil.example', ...auth });
    assert.equal(hostForeign.status, 200, hostForeign.text);
  });

  test('the token is still needed', async () => {
    const a = await send(port, 'GET', `http://127.0.0.1:${port}/v2/models/vad`, { host: `127.0.0.1:${port}` });
    assert.equal(a.status, 401);
    assert.equal(a.json?.code, 'PERCH_ERR_UNAUTHORIZED');
  });

  test('no authority, or userinfo in it: 400 PERCH_ERR_INVALID_MESSAGE', async () => {
    for (const target of ['http:///v2/models/vad', `http://user@127.0.0.1:${port}/v2/models/vad`]) {
      const a = await send(port, 'GET', target, { host: `127.0.0.1:${port}`, ...auth });
      assert.equal(a.status, 400, `${target}: ${a.text}`);
      assert.equal(a.json?.code, 'PERCH_ERR_INVALID_MESSAGE');
    }
  });

  test('an HTTP/1.1 request in absolute form still needs its Host field (RFC 9112 section 3.2)', async () => {
    const a = await send(port, 'GET', `http://127.0.0.1:${port}/v2/models/vad`, auth);
    assert.equal(a.status, 400, a.text);
    assert.equal(a.json?.code, 'PERCH_ERR_INVALID_MESSAGE');
  });

  test('a WebSocket upgrade in absolute form: 101, and 403 for a foreign authority', async () => {
    const upgrade = { upgrade: 'websocket', connection: 'Upgrade', 'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==', 'sec-websocket-version': 13, ...auth };
    const ok = await send(port, 'GET', `http://127.0.0.1:${port}/v1/ws`, { host: `127.0.0.1:${port}`, ...upgrade });
    assert.equal(ok.status, 101);
    const foreign = await send(port, 'GET', 'http://evil.example/v1/ws', { host: `127.0.0.1:${port}`, ...upgrade });
    assert.equal(foreign.status, 403);
  });

  test('the control listener routes it too, and checks its authority', async () => {
    const live = await send(controlPort, 'GET', `http://127.0.0.1:${controlPort}/v2/health/live`, { host: `127.0.0.1:${controlPort}` });
    assert.equal(live.status, 200, live.text);
    const metrics = await send(controlPort, 'GET', `http://localhost:${controlPort}/metrics`, { host: `127.0.0.1:${controlPort}`, ...auth });
    assert.equal(metrics.status, 200);
    const foreign = await send(controlPort, 'GET', 'http://evil.example/metrics', { host: `127.0.0.1:${controlPort}`, ...auth });
    assert.equal(foreign.status, 403, foreign.text);
    assert.equal(foreign.json?.code, 'PERCH_ERR_HOST_FORBIDDEN');
  });
});
