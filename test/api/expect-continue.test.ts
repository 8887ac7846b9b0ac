// Expect: 100-continue (RFC 9110 section 10.1.1; docs/api.md): a request Perch refuses from its
// headers is answered with its coded 4xx and no `100 Continue` first, so its client never sends
// the body, and the connection closes; a request Perch takes gets `100 Continue`, then its answer.
// Node's http.Server sent `100 Continue` itself for every such request, refused or not.
// Any other Expect is 417 PERCH_ERR_EXPECTATION_FAILED (Node answered a bare 417, no code).
// Raw sockets: Node's client handles the interim answer itself.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { vadInputs } from '../helpers/models.js';
import { MODEL_FILES } from '../helpers/paths.js';
import { head, RawHttp } from '../helpers/raw-http.js';
import { TempRepository } from '../helpers/repository.js';
import { startRuntime, type TestRuntime } from '../helpers/runtime.js';
import { vadModelJson } from '../helpers/scenarios.js';
import { inferBody } from '../helpers/wire.js';

const TOKEN = 'continue-token-0123';
const MiB = 1024 * 1024;

describe('Expect: 100-continue', () => {
  let repo: TempRepository;
  let rt: TestRuntime;
  let port: number;
  let controlPort: number;

  before(async () => {
    repo = new TempRepository({ vad: { versions: { 1: MODEL_FILES.sileroVad16k }, config: vadModelJson(8) } });
    rt = await startRuntime(repo.dir, { server: { apiToken: TOKEN, maxClientBytes: MiB, control: { port: 0 } } });
    port = rt.runtime.address.port;
    controlPort = rt.runtime.control?.port as number;
  });
  after(async () => {
    await rt?.stop();
    repo?.remove();
  });

  const host = (): string => `127.0.0.1:${port}`;
  const auth = { authorization: `Bearer ${TOKEN}` };

  /** Sends the head alone and returns the first answer, which must be the refusal; then the server closes. */
  async function refusedFromHead(p: number, method: string, target: string, headers: Record<string, string | number>, body = ''): Promise<Record<string, unknown> | undefined> {
    const conn = await RawHttp.connect(p);
    try {
      conn.write(head(method, target, { expect: '100-continue', 'content-type': 'application/json', ...headers }) + body);
      const first = await conn.next();
      assert.notEqual(first.status, 100, `no 100 Continue before the refusal of ${method} ${target}`);
      assert.equal(first.headers.connection, 'close', 'the body was not read: the connection closes');
      await conn.closed; // the server ends it without the body ever sent
      return { status: first.status, ...first.json };
    } finally {
      conn.destroy();
    }
  }

  const infer = '/v2/models/vad/infer';
  const cases: Array<[string, string, string, Record<string, string | number>, number, string]> = [
    ['no token', 'POST', infer, { host: '', 'content-length': 5000 }, 401, 'PERCH_ERR_UNAUTHORIZED'],
    ['a wrong token', 'POST', infer, { host: '', authorization: 'Bearer nope', 'content-length': 5000 }, 401, 'PERCH_ERR_UNAUTHORIZED'],
    ['a foreign Host', 'POST', infer, { host: 'evil.example', ...auth, 'content-length': 5000 }, 403, 'PERCH_ERR_HOST_FORBIDDEN'],
    ['an unknown model', 'POST', '/v2/models/nosuch/infer', { host: '', ...auth, 'content-length': 5000 }, 404, 'PERCH_ERR_MODEL_NOT_FOUND'],
    ['no such endpoint', 'POST', '/v2/nothing', { host: '', ...auth, 'content-length': 5000 }, 404, 'PERCH_ERR_ROUTE_NOT_FOUND'],
    ['a method the endpoint does not take', 'POST', '/v2/health/live', { host: '', 'content-length': 5000 }, 405, 'PERCH_ERR_METHOD_NOT_ALLOWED'],
    ['a body over server.maxRequestBytes', 'POST', infer, { host: '', ...auth, 'content-length': 40 * MiB }, 413, 'PERCH_ERR_REQUEST_TOO_LARGE'],
    // The JSON parse charged from the headers (docs/reliability.md "Large JSON bodies").
    ['a JSON body whose parse cannot fit the client budget', 'POST', infer, { host: '', ...auth, 'content-length': 900_000 }, 413, 'PERCH_ERR_REQUEST_TOO_LARGE'],
  ];
  for (const [what, method, target, headers, status, code] of cases) {
    test(`${what}: ${status} ${code} with no 100 Continue, and the connection closes`, async () => {
      const h = { ...headers, host: headers.host === '' ? host() : headers.host as string };
      const answer = await refusedFromHead(port, method, target, h);
      assert.equal(answer?.status, status, JSON.stringify(answer));
      assert.equal(answer?.code, code);
    });
  }

  test('a request that passes every check from its head: 100 Continue, then the body is read and answered', async () => {
    const body = JSON.stringify(inferBody(vadInputs(1)));
    const conn = await RawHttp.connect(port);
    try {
      conn.write(head('POST', infer, { host: host(), ...auth, expect: '100-continue', 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }));
      const interim = await conn.next();
      assert.equal(interim.status, 100);
      conn.write(body);
      const answer = await conn.next();
      assert.equal(answer.status, 200, answer.text);
      assert.ok(Array.isArray(answer.json?.outputs));
      // Kept alive: the next request on the connection is answered.
      conn.write(head('GET', '/v2/health/live', { host: host() }));
      assert.equal((await conn.next()).status, 200);
    } finally {
      conn.destroy();
    }
  });

  test('a chunked body: 100 Continue once its head passes, then answered', async () => {
    const body = Buffer.from(JSON.stringify(inferBody(vadInputs(2))));
    const conn = await RawHttp.connect(port);
    try {
      conn.write(head('POST', infer, { host: host(), ...auth, expect: '100-continue', 'content-type': 'application/json', 'transfer-encoding': 'chunked' }));
      assert.equal((await conn.next()).status, 100);
      conn.write(`${body.length.toString(16)}\r\n`);
      conn.write(body);
      conn.write('\r\n0\r\n\r\n');
      const answer = await conn.next();
      assert.equal(answer.status, 200, answer.text);
    } finally {
      conn.destroy();
    }
  });

  // Any other expectation: Node answered a bare 417 (no body, no code) before Perch saw the request.
  describe('an Expect other than 100-continue: 417 PERCH_ERR_EXPECTATION_FAILED, and the connection closes', () => {
    const expectation = (p: number, target: string, expect: string, body = ''): Promise<Record<string, unknown> | undefined> =>
      refusedFromHead(p, 'POST', target, { host: `127.0.0.1:${p}`, ...auth, expect, 'content-length': body.length || 5000 }, body);
    for (const expect of ['nothing-you-have', 'continue', '200-ok']) {
      test(`Expect: ${expect}, body held back`, async () => {
        const answer = await expectation(port, infer, expect);
        assert.equal(answer?.status, 417, JSON.stringify(answer));
        assert.equal(answer?.code, 'PERCH_ERR_EXPECTATION_FAILED');
      });
    }
    test('the body sent along with the head: answered without a reset', async () => {
      const answer = await expectation(port, infer, 'x-custom', JSON.stringify(inferBody(vadInputs(1))));
      assert.equal(answer?.status, 417, JSON.stringify(answer));
      assert.equal(answer?.code, 'PERCH_ERR_EXPECTATION_FAILED');
    });
    test('the control listener too', async () => {
      const answer = await expectation(controlPort, '/v2/health/live', 'nothing-you-have');
      assert.equal(answer?.status, 417, JSON.stringify(answer));
      assert.equal(answer?.code, 'PERCH_ERR_EXPECTATION_FAILED');
    });
    test('the main port still answers on a new connection', async () => {
      const conn = await RawHttp.connect(port);
      try {
        conn.write(head('GET', '/v2/health/live', { host: host() }));
        assert.equal((await conn.next()).status, 200);
      } finally {
        conn.destroy();
      }
    });
  });

  describe('the control listener (it reads no body)', () => {
    test('health answers with no 100 Continue first', async () => {
      const answer = await refusedFromHead(controlPort, 'GET', '/v2/health/live', { host: `127.0.0.1:${controlPort}`, 'content-length': 5000 });
      assert.equal(answer?.status, 200);
      assert.equal(answer?.live, true);
    });
    test('/metrics without the token: 401 with no 100 Continue first', async () => {
      const answer = await refusedFromHead(controlPort, 'GET', '/metrics', { host: `127.0.0.1:${controlPort}`, 'content-length': 5000 });
      assert.equal(answer?.status, 401);
      assert.equal(answer?.code, 'PERCH_ERR_UNAUTHORIZED');
    });
  });
});
