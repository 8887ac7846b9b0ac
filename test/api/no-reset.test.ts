// Every malformed HTTP request gets its 4xx answer before the connection closes, never a reset
// (issue 12; runtime/api/http/lingering-close.ts). Each client here writes its whole request
// (head and body) before reading, as most HTTP clients do, then half-closes: a server that
// answered early and closed with the body unread made the kernel reset the connection, and the
// client saw EPIPE/ECONNRESET instead of (or before) its answer.
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { rng } from '../helpers/models.js';
import { MODEL_FILES } from '../helpers/paths.js';
import { exchange } from '../helpers/raw-http.js';
import { TempRepository } from '../helpers/repository.js';
import { startRuntime, type TestRuntime } from '../helpers/runtime.js';
import { vadModelJson } from '../helpers/scenarios.js';

const BODY = Buffer.alloc(4 * 1024 * 1024, 0x61);

/** `body` as one chunk of chunked transfer coding, and the last chunk. */
function chunked(body: Buffer): Buffer {
  return Buffer.concat([Buffer.from(`${body.length.toString(16)}\r\n`), body, Buffer.from('\r\n0\r\n\r\n')]);
}

/** Status codes of the answers in `text`, in order. */
const statuses = (text: string): number[] => [...text.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((m) => Number(m[1]));

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
    ['HEAD on an infer route, no body', `HEAD /v2/models/vad/infer HTTP/1.1\r\n${H}\r\n`, Buffer.alloc(0), 405, null],
    ['HEAD on a model\'s infer route, kept alive, a body after it', `HEAD /v2/models/vad/versions/1/infer HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: ${BODY.length}\r\n\r\n`, BODY, 405, null],
    ['a chunked body over maxRequestBytes, on a kept-alive connection', `POST /v2/models/vad/infer HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n`, chunked(BODY), 413, 'PERCH_ERR_REQUEST_TOO_LARGE'],
    // RFC 9112 section 3.2 (request-guard.ts checkHostField): Node's own 400 for these had no body and no code.
    ['an HTTP/1.1 request without Host', 'GET /v2/health/live HTTP/1.1\r\nConnection: close\r\n\r\n', Buffer.alloc(0), 400, 'PERCH_ERR_INVALID_MESSAGE'],
    ['two Host fields', `POST /v2/models/vad/infer HTTP/1.1\r\n${H}Host: evil.example\r\nContent-Length: ${BODY.length}\r\n\r\n`, BODY, 400, 'PERCH_ERR_INVALID_MESSAGE'],
    // Number() read '0x10' as 16 and split the body there: the header is refused as not a length.
    ...['0x10', '1e2', '0b1', '+16', '16.0'].map((v): [string, string, Buffer, number, string] => [
      `Inference-Header-Content-Length ${v}`, `POST /v2/models/vad/infer HTTP/1.1\r\n${H}Content-Type: application/octet-stream\r\nInference-Header-Content-Length: ${v}\r\nContent-Length: 400\r\n\r\n`,
      Buffer.alloc(400, 0x20), 400, 'PERCH_ERR_BINARY_SIZE',
    ]),
    ['a body after an error, then more requests', `POST /nowhere HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\n\r\n`, Buffer.concat([Buffer.from('hello'), BODY]), 404, 'PERCH_ERR_ROUTE_NOT_FOUND'],
  ];

  for (const [name, head, body, status, code] of cases) {
    test(name, async () => {
      const r = await exchange(port, head, body);
      assert.equal(r.error, null, `no reset: ${r.error} (got ${JSON.stringify(r.text.slice(0, 120))})`);
      assert.match(r.text, new RegExp(`^HTTP/1\\.1 ${status} `));
      if (code) assert.ok(r.text.includes(`"code":"${code}"`), r.text.slice(0, 400));
    });
  }

  test('pipelined requests after an error are answered in order, on the same connection', async () => {
    const bad = `POST /v2/models/vad/infer HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 5\r\n\r\n{{{{{`;
    const unknown = 'GET /v2/models/nope HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n';
    const head = 'HEAD /v2/models/vad/infer HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n';
    const health = `GET /v2/health/ready HTTP/1.1\r\n${H}\r\n`;
    const r = await exchange(port, bad + unknown + head + bad + health, Buffer.alloc(0));
    assert.equal(r.error, null, `no reset: ${r.error}`);
    assert.deepEqual(statuses(r.text), [400, 404, 405, 400, 200], r.text.slice(0, 2000));
  });

  test('a request that breaks the parser pipelined behind an inference in flight: the inference\'s answer, then the 400, then a close', async () => {
    // The parse error was given as the answer of the inference still running (a 400 kept alive,
    // its real answer dropped), and the connection then hung with its parser broken until the
    // keep-alive timeout (lingering-close.ts). Read until the 400's body is in, or the close.
    const samples = Array.from({ length: 576 }, (_, i) => (Math.sin(i) / 10).toFixed(4)).join(',');
    const json = `{"inputs":[{"name":"input","datatype":"FP32","shape":[1,576],"data":[${samples}]},{"name":"state","datatype":"FP32","shape":[2,1,128],"data":[${new Array(256).fill(0).join(',')}]},{"name":"sr","datatype":"INT64","shape":[],"data":[16000]}]}`;
    const infer = `POST /v2/models/vad/infer HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: ${json.length}\r\n\r\n${json}`;
    for (const garbage of ['GARBAGE\r\n\r\n', 'GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: x\r\n\r\n']) {
      const r = await new Promise<{ text: string; closed: boolean; error: string | null }>((resolve) => {
        const s = connect(port, '127.0.0.1');
        let text = '';
        let error: string | null = null;
        s.on('data', (d: Buffer) => {
          text += d.toString('latin1');
          if (/PERCH_ERR_INVALID_MESSAGE"\}/.test(text)) resolve({ text, closed: false, error });
        });
        s.on('error', (e: NodeJS.ErrnoException) => (error = e.code ?? e.message));
        s.on('close', () => resolve({ text, closed: true, error }));
        s.on('connect', () => s.write(infer + infer + garbage));
      });
      assert.equal(r.error, null, `no reset: ${r.error}`);
      assert.deepEqual(statuses(r.text), [200, 200, 400], r.text.slice(0, 600));
      assert.match(r.text, /"outputs":\[/, 'the inference\'s own answer');
      assert.match(r.text, /HTTP\/1\.1 400 [^]*Connection: close/, 'the 400 closes the connection');
    }
  });

  test('a body cut short by the client\'s FIN: the 400 says close, and the connection ends', async () => {
    // Kept alive as the request asked, the connection stayed open after the 400 until the
    // keep-alive timeout (65 s) with its parser broken (lingering-close.ts; nine of the fuzzer's
    // 300 requests below, 130 s of its run). Read until the answer's body is in.
    for (const head of [
      'POST /v2/models/vad/infer HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 5000\r\n\r\n',
      'POST /v2/models/vad/infer HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n1000\r\n',
    ]) {
      const s = connect(port, '127.0.0.1');
      let text = '';
      const closed = new Promise<void>((resolve) => s.on('close', () => resolve()));
      s.on('error', () => undefined);
      await new Promise<void>((resolve) => {
        s.on('data', (d: Buffer) => {
          text += d.toString('latin1');
          if (/PERCH_ERR_INVALID_MESSAGE"\}/.test(text)) resolve();
        });
        s.on('connect', () => s.end(`${head}{"inputs":[`));
      });
      assert.match(text, /^HTTP\/1\.1 400 /);
      assert.match(text, /\r\nconnection: close\r\n/i, text);
      await closed;
    }
  });

  test('pipelined requests behind an answer that closes the connection: that answer, then a clean close', async () => {
    const tooLarge = `POST /v2/models/vad/infer HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: ${BODY.length}\r\n\r\n`;
    const health = 'GET /v2/health/ready HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n';
    const r = await exchange(port, tooLarge, Buffer.concat([BODY, Buffer.from(health.repeat(20))]));
    assert.equal(r.error, null, `no reset: ${r.error}`);
    assert.equal(statuses(r.text)[0], 413, r.text.slice(0, 400));
  });

  test('an error answered with a large body unread closes the connection instead of reading the body at full speed', async () => {
    // Kept alive, Node would read and discard all 64 MiB to reach a next request (docs/reliability.md,
    // "Malformed HTTP"): the answer says close, and the connection ends while the client still sends.
    const declared = 64 * 1024 * 1024;
    const r = await new Promise<{ text: string; ended: boolean }>((resolve) => {
      const s = connect(port, '127.0.0.1');
      let text = '';
      let ended = false;
      s.on('data', (d: Buffer) => (text += d.toString('latin1')));
      s.on('end', () => (ended = true));
      s.on('error', () => undefined);
      s.on('close', () => resolve({ text, ended }));
      s.on('connect', () => {
        s.write(`POST /nowhere HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: ${declared}\r\n\r\n`);
        s.write(BODY); // 4 MiB of the 64 announced; the rest never comes
      });
    });
    assert.match(r.text, /^HTTP\/1\.1 404 /);
    assert.match(r.text, /\r\nConnection: close\r\n/i, r.text.slice(0, 400));
    assert.ok(r.ended, 'the server ended the connection after its answer (no reset)');
  });

  test('a seeded random fuzzer: 300 malformed requests, each answered (2xx-4xx) before the close, none reset', async () => {
    const seed = Number(process.env.PERCH_FUZZ_SEED ?? 1212);
    const random = rng(seed);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)] as T;
    const bytes = (n: number): Buffer => Buffer.from(Array.from({ length: n }, () => Math.floor(random() * 256)));
    const methods = ['GET', 'POST', 'HEAD', 'PUT', 'DELETE', 'OPTIONS', 'PATCH', 'POST', 'POST'];
    const paths = ['/v2/models/vad/infer', '/v2/models/vad/versions/1/infer', '/v2/models/nope/infer', '/v2/health/ready', '/v2/models/vad', '/v1/ws', '/metrics', '/nowhere', `/${'a'.repeat(3000)}`, '/v2/models/%ff/infer', '/v2/models/vad/infer?x=1'];
    const bodies = (): Buffer => pick([
      () => Buffer.alloc(0),
      () => bytes(1 + Math.floor(random() * 2000)),
      () => Buffer.from('{"inputs":[{"name":"input","datatype":"FP32","shape":[1,576],"data":[1,2'),
      () => Buffer.from(JSON.stringify({ inputs: [{ name: 'input', datatype: pick(['FP32', 'INT64', 'BYTES', 'X']), shape: [1, Math.floor(random() * 1000) - 10], data: [1, 2, 3] }] })),
      () => Buffer.alloc(64 * 1024 + Math.floor(random() * 2 * 1024 * 1024), 0x30),
    ])();
    const failures: string[] = [];
    const one = async (i: number): Promise<void> => {
      const body = bodies();
      const lengthHeader = pick([
        `Content-Length: ${body.length}\r\n`,
        `Content-Length: ${Math.max(0, body.length - 1 - Math.floor(random() * 10))}\r\n`,
        `Content-Length: ${body.length + 1 + Math.floor(random() * 10)}\r\n`,
        'Content-Length: abc\r\n',
        `Content-Length: ${body.length}\r\nContent-Length: ${body.length + 1}\r\n`,
        'Transfer-Encoding: chunked\r\n',
        'Transfer-Encoding: gzip, chunked\r\n',
        '',
      ]);
      const extra = pick(['', 'Content-Type: application/json\r\n', 'Content-Type: application/octet-stream\r\n', `Inference-Header-Content-Length: ${Math.floor(random() * 5000) - 100}\r\n`, 'Content-Type: image/png\r\n', 'Expect: 100-continue\r\n']);
      const closing = random() < 0.5 ? 'Connection: close\r\n' : '';
      const payload = lengthHeader.startsWith('Transfer-Encoding: chunked') && random() < 0.5 ? chunked(body) : body;
      const line = random() < 0.05 ? `${pick(methods)} ${pick(paths)}\r\n` : `${pick(methods)} ${pick(paths)} HTTP/1.1\r\n`;
      const head = `${line}Host: 127.0.0.1\r\n${closing}${extra}${lengthHeader}\r\n`;
      const r = await exchange(port, head, payload);
      const first = statuses(r.text).find((s) => s >= 200); // after any 100 Continue
      const what = `#${i} ${JSON.stringify(head.slice(0, 200))} + ${payload.length} bytes`;
      if (r.error !== null) failures.push(`${what}: ${r.error} after ${JSON.stringify(r.text.slice(0, 80))}`);
      else if (first === undefined || first < 200 || first >= 500) failures.push(`${what}: answered ${JSON.stringify(r.text.slice(0, 120))}`);
    };
    // A few at a time, 300 in all.
    for (let i = 0; i < 300; i += 6) await Promise.all(Array.from({ length: 6 }, (_, k) => one(i + k)));
    assert.deepEqual(failures, [], `seed ${seed} (PERCH_FUZZ_SEED): ${failures.length} of 300 requests not answered cleanly`);
  });

  test('still serving', async () => {
    const r = await exchange(port, `GET /v2/health/ready HTTP/1.1\r\n${H}\r\n`, Buffer.alloc(0));
    assert.match(r.text, /^HTTP\/1\.1 200 /);
  });
});
