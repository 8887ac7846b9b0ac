// Every malformed HTTP request gets its 4xx answer before the connection closes, never a reset
// (issue 12; runtime/api/http/lingering-close.ts). Each client here writes its whole request
// (head and body) before reading, as most HTTP clients do, then half-closes: a server that
// answered early and closed with the body unread made the kernel reset the connection, and the
// client saw EPIPE/ECONNRESET instead of (or before) its answer.
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { MODEL_FILES } from '../helpers/paths.js';
import { TempRepository } from '../helpers/repository.js';
import { startRuntime, type TestRuntime } from '../helpers/runtime.js';
import { vadModelJson } from '../helpers/scenarios.js';

interface Outcome {
  text: string;
  error: string | null;
}

/** Writes `head` + `body`, half-closes, reads until the server closes; any socket error is kept. */
function exchange(port: number, head: string, body: Buffer): Promise<Outcome> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    let text = '';
    let error: string | null = null;
    s.on('data', (d: Buffer) => (text += d.toString('latin1')));
    s.on('error', (e: NodeJS.ErrnoException) => (error = e.code ?? e.message));
    s.on('close', () => resolve({ text, error }));
    s.on('connect', () => {
      s.write(head);
      s.end(body);
    });
  });
}

const BODY = Buffer.alloc(4 * 1024 * 1024, 0x61);

describe('malformed HTTP requests: an answer, never a reset', () => {
  let repo: TempRepository;
  let rt: TestRuntime;
  let port: number;

  before(async () => {
    repo = new TempRepository({ vad: { versions: { 1: MODEL_FILES.sileroVad16k }, config: vadModelJson(8) } });
    rt = await startRuntime(repo.dir, { server: { maxRequestBytes: 1024 * 1024 } });
    port = Number(new URL(rt.baseUrl).port);
  });
  after(async () => {
    await rt?.stop();
    repo?.remove();
  });

  const H = 'Host: 127.0.0.1\r\nConnection: close\r\n';
  const cases: Array<[string, string, Buffer, number, string | null]> = [
    ['HEAD on an infer route, with a body', `HEAD /v2/models/vad/infer HTTP/1.1\r\n${H}Content-Length: ${BODY.length}\r\n\r\n`, BODY, 405, null],
    ['a body to an unknown path', `POST /nowhere HTTP/1.1\r\n${H}Content-Length: ${BODY.length}\r\n\r\n`, BODY, 404, 'PERCH_ERR_ROUTE_NOT_FOUND'],
    ['a body to an unknown model', `POST /v2/models/nope/infer HTTP/1.1\r\n${H}Content-Length: ${BODY.length}\r\n\r\n`, BODY, 404, 'PERCH_ERR_MODEL_NOT_FOUND'],
    ['a body over maxRequestBytes, sent anyway', `POST /v2/models/vad/infer HTTP/1.1\r\n${H}Content-Length: ${BODY.length}\r\n\r\n`, BODY, 413, 'PERCH_ERR_REQUEST_TOO_LARGE'],
    ['a body to a GET endpoint', `GET /v2/health/live HTTP/1.1\r\n${H}Content-Length: ${BODY.length}\r\n\r\n`, BODY, 200, null],
    ['bad JSON, and bytes after the declared body', `POST /v2/models/vad/infer HTTP/1.1\r\n${H}Content-Length: 10\r\n\r\n`, Buffer.from('{{{{{{{{{{' + 'x'.repeat(100_000)), 400, 'PERCH_ERR_MALFORMED_JSON'],
    ['a request line that is not HTTP', 'GARBAGE\r\n\r\n', BODY, 400, 'PERCH_ERR_INVALID_MESSAGE'],
    ['a broken chunked body', `POST /v2/models/vad/infer HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n`, Buffer.from('zz\r\nabc\r\n0\r\n\r\n'), 400, 'PERCH_ERR_INVALID_MESSAGE'],
  ];

  for (const [name, head, body, status, code] of cases) {
    test(name, async () => {
      const r = await exchange(port, head, body);
      assert.equal(r.error, null, `no reset: ${r.error} (got ${JSON.stringify(r.text.slice(0, 120))})`);
      assert.match(r.text, new RegExp(`^HTTP/1\\.1 ${status} `));
      if (code) assert.ok(r.text.includes(`"code":"${code}"`), r.text.slice(0, 400));
    });
  }

  test('still serving', async () => {
    const r = await exchange(port, `GET /v2/health/ready HTTP/1.1\r\n${H}\r\n`, Buffer.alloc(0));
    assert.match(r.text, /^HTTP\/1\.1 200 /);
  });
});
