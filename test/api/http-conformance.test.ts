// HTTP and WebSocket details a first trial tripped on (issue 14, bug 11), each against a real
// server and real clients: /metrics passes promtool's checks (test/helpers/promlint.ts), HEAD
// answers like GET without a body, a 405 carries Allow, a 401 carries WWW-Authenticate, an
// unknown model's infer is 404 whatever the body, and a numeric WebSocket id is echoed as sent.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { httpInfer, jsonTensor } from '../helpers/clients.js';
import { vadInputs } from '../helpers/models.js';
import { MODEL_FILES } from '../helpers/paths.js';
import { lintExposition } from '../helpers/promlint.js';
import { TempRepository } from '../helpers/repository.js';
import { startRuntime, type TestRuntime } from '../helpers/runtime.js';
import { vadModelJson } from '../helpers/scenarios.js';
import { rawRequest, RecordingWs, scrape, upgradeAnswer } from '../helpers/wire.js';

const TOKEN = 'conformance-token-0123';
const auth = { authorization: `Bearer ${TOKEN}` };

describe('HTTP and WebSocket conformance', () => {
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

  describe('/metrics passes promtool check metrics', () => {
    test('the live exposition, with labelled series from successes, failures and histograms', async () => {
      assert.equal((await httpInfer(rt.baseUrl, 'vad', vadInputs(1), { token: TOKEN })).status, 200);
      assert.equal((await httpInfer(rt.baseUrl, 'nosuch', vadInputs(1), { token: TOKEN })).status, 404);
      const text = await scrape(rt.baseUrl, TOKEN);
      assert.match(text, /^perch_inference_request_success_total\{model="vad",version="1"\} 1$/m, 'labelled series are there');
      assert.match(text, /^perch_queue_duration_seconds_bucket\{le="\+Inf",model="vad",version="1"\} 1$/m);
      assert.match(text, /^# TYPE perch_process_cpu_seconds_total counter$/m, 'Node process metrics under perch_');
      assert.match(text, /^# TYPE perch_nodejs_active_handles gauge$/m, 'the per-type Node gauges stay');
      assert.deepEqual(lintExposition(text), []);
    });

    test('the checker finds what promtool finds (so the test above can fail)', () => {
      const ok = '# HELP a_total A.\n# TYPE a_total counter\na_total 1\n';
      assert.deepEqual(lintExposition(ok), []);
      const cases: Array<[string, RegExp]> = [
        ['# HELP x_total X.\n# TYPE x_total gauge\nx_total 3\n', /non-counter metrics should not have "_total" suffix/],
        ['# HELP x X.\n# TYPE x counter\nx 3\n', /counter metrics should have "_total" suffix/],
        ['# TYPE x gauge\nx 3\n', /no help text/],
        ['x 3\n', /no TYPE line/],
        ['# HELP x_count X.\n# TYPE x_count gauge\nx_count 3\n', /should not have "_count" suffix/],
        ['# HELP x_milliseconds X.\n# TYPE x_milliseconds gauge\nx_milliseconds 3\n', /base unit "seconds"/],
        ['# HELP x_ms X.\n# TYPE x_ms gauge\nx_ms 3\n', /abbreviated units/],
        ['# HELP queueDepth X.\n# TYPE queueDepth gauge\nqueueDepth 3\n', /camelCase/],
        ['# HELP x_gauge X.\n# TYPE x_gauge gauge\nx_gauge 3\n', /include type 'gauge'/],
        ['# HELP x X.\n# TYPE x gauge\nx{a="1"} 3\nx{a="1"} 4\n', /duplicate series/],
        ['# HELP x X.\n# TYPE x gauge\nx 3\n# HELP y Y.\n# TYPE y gauge\ny 1\nx 4\n', /appears again/],
        ['# HELP x X.\n# TYPE x gauge\nx{a=1} 3\n', /cannot parse labels/],
        ['# HELP h H.\n# TYPE h histogram\nh_bucket{le="1"} 2\nh_sum 1\nh_count 2\n', /no le="\+Inf" bucket/],
        ['# HELP x X.\n# TYPE x gauge\nx 3', /end with a newline/],
      ];
      for (const [text, want] of cases) assert.ok(lintExposition(text).some((p) => want.test(p)), `${want} in ${JSON.stringify(lintExposition(text))}`);
    });
  });

  describe('HEAD', () => {
    for (const path of ['/v2/health/live', '/v2/health/ready', '/metrics', '/v2/models/vad']) {
      test(`HEAD ${path}: the GET's status and headers, no body`, async () => {
        const get = await rawRequest(rt.baseUrl, 'GET', path, { headers: auth });
        const head = await rawRequest(rt.baseUrl, 'HEAD', path, { headers: auth });
        assert.equal(get.status, 200);
        assert.equal(head.status, 200);
        assert.equal(head.text, '');
        assert.equal(head.headers['content-type'], get.headers['content-type']);
        assert.ok(Number(head.headers['content-length']) > 0, 'HEAD announces the GET body length');
      });
    }
    test('HEAD needs the token where GET does', async () => {
      assert.equal((await rawRequest(rt.baseUrl, 'HEAD', '/metrics')).status, 401);
    });
  });

  describe('405 carries Allow', () => {
    const cases: Array<[string, string, string]> = [
      ['DELETE', '/v2/health/live', 'GET, HEAD'],
      ['POST', '/metrics', 'GET, HEAD'],
      ['GET', '/v2/models/vad/infer', 'POST'],
      ['PUT', '/v2/repository/models/vad/unload', 'POST'],
    ];
    for (const [method, path, allow] of cases) {
      test(`${method} ${path}: 405 PERCH_ERR_METHOD_NOT_ALLOWED, Allow: ${allow}`, async () => {
        const res = await rawRequest(rt.baseUrl, method, path, { headers: auth });
        assert.equal(res.status, 405);
        assert.equal(res.json?.code, 'PERCH_ERR_METHOD_NOT_ALLOWED');
        assert.equal(res.headers.allow, allow);
      });
    }
  });

  describe('401 carries WWW-Authenticate', () => {
    test('HTTP without or with a wrong token', async () => {
      for (const headers of [{}, { authorization: 'Bearer wrong-token' }] as Array<Record<string, string>>) {
        const res = await rawRequest(rt.baseUrl, 'GET', '/v2/models/vad', { headers });
        assert.equal(res.status, 401);
        assert.equal(res.json?.code, 'PERCH_ERR_UNAUTHORIZED');
        assert.equal(res.headers['www-authenticate'], 'Bearer realm="perch"');
      }
    });
    test('a WebSocket upgrade without a token', async () => {
      const res = await upgradeAnswer(rt.wsUrl);
      assert.equal(res.status, 401);
      assert.equal(res.json?.code, 'PERCH_ERR_UNAUTHORIZED');
      assert.equal(res.headers['www-authenticate'], 'Bearer realm="perch"');
    });
    test('answers that are not 401 carry none', async () => {
      assert.equal((await rawRequest(rt.baseUrl, 'GET', '/v2/models/vad', { headers: auth })).headers['www-authenticate'], undefined);
    });
  });

  describe('infer on an unknown model is 404 whatever the body', () => {
    const bodies: Array<[string, string | undefined]> = [['no body', undefined], ['{}', '{}'], ['not JSON', 'hello'], ['a valid request', JSON.stringify({ inputs: vadInputs(2).map(jsonTensor) })]];
    for (const [what, body] of bodies) {
      test(`POST /v2/models/nosuch/infer with ${what}: 404 PERCH_ERR_MODEL_NOT_FOUND`, async () => {
        const res = await rawRequest(rt.baseUrl, 'POST', '/v2/models/nosuch/infer', { headers: { ...auth, 'content-type': 'application/json' }, ...(body === undefined ? {} : { body }) });
        assert.equal(res.status, 404, res.text);
        assert.equal(res.json?.code, 'PERCH_ERR_MODEL_NOT_FOUND');
      });
    }
    test('an unknown version of a known model: 404 PERCH_ERR_VERSION_NOT_FOUND', async () => {
      const res = await rawRequest(rt.baseUrl, 'POST', '/v2/models/vad/versions/9/infer', { headers: { ...auth, 'content-type': 'application/json' }, body: '{}' });
      assert.equal(res.status, 404, res.text);
      assert.equal(res.json?.code, 'PERCH_ERR_VERSION_NOT_FOUND');
    });
    test('a known model with a bad body is still 400', async () => {
      const res = await rawRequest(rt.baseUrl, 'POST', '/v2/models/vad/infer', { headers: { ...auth, 'content-type': 'application/json' }, body: '{}' });
      assert.equal(res.status, 400);
    });
  });

  describe('WebSocket ids', () => {
    test('a numeric id is answered with that same id, for results and for errors', async () => {
      const ws = await RecordingWs.connect(rt.wsUrl, { headers: auth });
      try {
        ws.socket.send(JSON.stringify({ id: 7, op: 'status' }));
        ws.socket.send(JSON.stringify({ id: 0, op: 'infer', model: 'vad', inputs: vadInputs(3).map(jsonTensor) }));
        ws.socket.send(JSON.stringify({ id: 42, op: 'no-such-op' }));
        ws.socket.send(JSON.stringify({ id: 43, op: 'infer', model: 'nosuch', inputs: vadInputs(4).map(jsonTensor) }));
        ws.socket.send(JSON.stringify({ id: '7', op: 'status' }));
        assert.equal((await ws.waitAnswer(7)).ok, true);
        const inferred = await ws.waitAnswer(0);
        assert.equal(inferred.ok, true, JSON.stringify(inferred));
        assert.equal((await ws.waitAnswer(42)).ok, false);
        assert.equal(((await ws.waitAnswer(43)).error as { code: string }).code, 'PERCH_ERR_MODEL_NOT_FOUND');
        assert.equal((await ws.waitAnswer('7')).ok, true, 'the string "7" is another id than the number 7');
        assert.equal(ws.answers(7).length, 1);
        assert.equal(ws.answers(null).length, 0, 'no answer lost its id');
      } finally {
        await ws.close();
      }
    });
  });
});
