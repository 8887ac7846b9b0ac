// The control listener (server.control; docs/reliability.md "A control listener"): health,
// readiness, metrics and status on a port of their own, answered by a thread of their own from
// what the main thread publishes. The main event loop is really stalled here (Atomics.wait on the
// main thread) and a prober on another thread watches liveness fail while it is, and come back.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { after, before, describe, test } from 'node:test';
import { parseConfig } from '../../runtime/config/load.js';
import { silentLogger } from '../../runtime/base/log.js';
import { Runtime } from '../../runtime/runtime.js';
import { exchange } from '../helpers/raw-http.js';
import { startRuntime, type TestRuntime } from '../helpers/runtime.js';
import { rawRequest } from '../helpers/wire.js';

const TOKEN = 'control-token-1234';

function getOverSocket(socketPath: string, path: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, path, agent: false }, (res) => {
      let text = '';
      res.on('data', (c: Buffer) => (text += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('control listener', () => {
  let repo: string;
  let dir: string;
  let rt: TestRuntime;
  let control: string;
  let socketPath: string;

  before(async () => {
    repo = mkdtempSync(join(tmpdir(), 'perch-empty-repo-'));
    dir = mkdtempSync(join(tmpdir(), 'perch-control-'));
    socketPath = join(dir, 'control.sock');
    rt = await startRuntime(repo, { server: { apiToken: TOKEN, control: { port: 0, socketPath, maxLoopStallMs: 1000 } } });
    control = `http://127.0.0.1:${rt.runtime.control?.port}`;
  });
  after(async () => {
    await rt?.stop();
    rmSync(repo, { recursive: true, force: true });
    rmSync(dir, { recursive: true, force: true });
  });

  test('answers health openly, metrics and status with the token, nothing else', async () => {
    assert.deepEqual((await rawRequest(control, 'GET', '/v2/health/live')).json, { live: true });
    assert.deepEqual((await rawRequest(control, 'GET', '/v2/health/ready')).json, { ready: true });
    assert.equal((await rawRequest(control, 'HEAD', '/v2/health/ready')).status, 200);
    const denied = await rawRequest(control, 'GET', '/metrics');
    assert.equal(denied.status, 401);
    assert.equal(denied.json?.code, 'PERCH_ERR_UNAUTHORIZED');
    const auth = { authorization: `Bearer ${TOKEN}` };
    const metrics = await rawRequest(control, 'GET', '/metrics', { headers: auth });
    assert.equal(metrics.status, 200);
    assert.match(metrics.text, /^perch_client_bytes_limit 134217728$/m);
    assert.ok(Number(metrics.headers['perch-snapshot-age-ms']) >= 0);
    const status = await rawRequest(control, 'GET', '/v1/status', { headers: auth });
    assert.equal(status.status, 200);
    assert.equal(typeof status.json?.device, 'object');
    const foreign = await rawRequest(control, 'GET', '/metrics', { headers: { ...auth, host: 'evil.example' } });
    assert.equal(foreign.json?.code, 'PERCH_ERR_HOST_FORBIDDEN');
    const post = await rawRequest(control, 'POST', '/v2/health/live', { body: '' });
    assert.equal(post.status, 405);
    assert.equal(post.headers.allow, 'GET, HEAD');
    const infer = await rawRequest(control, 'POST', '/v2/models/x/infer', { body: '{}', headers: auth });
    assert.equal(infer.json?.code, 'PERCH_ERR_ROUTE_NOT_FOUND');
    assert.deepEqual(JSON.parse((await getOverSocket(socketPath, '/v2/health/live')).text), { live: true });
  });

  test('malformed requests and unread bodies get a coded answer before the close, never a reset', async () => {
    // Node's defaults on this port answered a parse error with a bare 400 (no code) and closed
    // with the body still coming, which the kernel turned into a reset (lingering-close.ts).
    const port = Number(rt.runtime.control?.port);
    const body = Buffer.alloc(4 * 1024 * 1024, 0x61);
    const cases: Array<[string, Buffer, number, string]> = [
      [`POST /v2/health/live HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: ${body.length}\r\n\r\n`, body, 405, 'PERCH_ERR_METHOD_NOT_ALLOWED'],
      [`POST /v2/health/live HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: ${body.length}\r\n\r\n`, body, 405, 'PERCH_ERR_METHOD_NOT_ALLOWED'],
      [`POST /nowhere HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: ${body.length}\r\n\r\n`, body, 404, 'PERCH_ERR_ROUTE_NOT_FOUND'],
      ['GARBAGE\r\n\r\n', body, 400, 'PERCH_ERR_INVALID_MESSAGE'],
      [`GET /v2/health/live HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ${'a'.repeat(100_000)}\r\n\r\n`, Buffer.alloc(0), 413, 'PERCH_ERR_REQUEST_TOO_LARGE'],
      ['GET /v2/health/live HTTP/1.1\r\nConnection: close\r\n\r\n', Buffer.alloc(0), 400, 'PERCH_ERR_INVALID_MESSAGE'],
    ];
    for (const [head, payload, status, code] of cases) {
      const r = await exchange(port, head, payload);
      const what = JSON.stringify(head.slice(0, 60));
      assert.equal(r.error, null, `${what}: no reset (${r.error}; got ${JSON.stringify(r.text.slice(0, 120))})`);
      assert.match(r.text, new RegExp(`^HTTP/1\\.1 ${status} `), what);
      assert.ok(r.text.includes(`"code":"${code}"`), `${what}: ${r.text.slice(0, 300)}`);
    }
    assert.deepEqual((await rawRequest(control, 'GET', '/v2/health/live')).json, { live: true });
  });

  test('a stalled main event loop fails liveness and readiness, and passes again once it turns', async () => {
    // The prober runs on its own thread: the main thread is about to stop.
    const sawFailure = new Int32Array(new SharedArrayBuffer(4));
    const prober = new Worker(`
      const { request } = require('node:http');
      const { parentPort, workerData } = require('node:worker_threads');
      const get = (path) => new Promise((resolve) => {
        const req = request(workerData.base + path, { agent: false, timeout: 5000 }, (res) => {
          let text = '';
          res.on('data', (c) => (text += c));
          res.on('end', () => resolve({ status: res.statusCode, text }));
        });
        req.on('timeout', () => req.destroy());
        req.on('error', () => resolve({ status: 0, text: '' }));
        req.end();
      });
      (async () => {
        let phase = 'before';
        for (;;) {
          const live = await get('/v2/health/live');
          if (phase === 'before' && live.status === 200) { phase = 'stall'; parentPort.postMessage({ phase: 'up' }); }
          else if (phase === 'stall' && live.status === 503) {
            const ready = await get('/v2/health/ready');
            phase = 'after';
            parentPort.postMessage({ phase: 'down', live: JSON.parse(live.text), ready: { status: ready.status, body: JSON.parse(ready.text) } });
            Atomics.store(workerData.flag, 0, 1);
            Atomics.notify(workerData.flag, 0);
          } else if (phase === 'after' && live.status === 200) { parentPort.postMessage({ phase: 'back' }); return; }
          await new Promise((r) => setTimeout(r, 20));
        }
      })();
    `, { eval: true, workerData: { base: control, flag: sawFailure } });
    const messages: Array<Record<string, unknown>> = [];
    const next = (phase: string): Promise<Record<string, unknown>> => new Promise((resolve, reject) => {
      const found = messages.find((m) => m.phase === phase);
      if (found) return resolve(found);
      const on = (m: Record<string, unknown>): void => {
        if (m.phase !== phase) return;
        prober.off('message', on);
        resolve(m);
      };
      prober.on('message', on);
      prober.once('error', reject);
    });
    prober.on('message', (m: Record<string, unknown>) => messages.push(m));
    try {
      await next('up');
      // Stall the main thread (the runtime's event loop) until the prober has seen liveness fail.
      assert.equal(Atomics.wait(sawFailure, 0, 0, 120_000), 'ok', 'liveness never failed while the main loop was stalled');
      const down = await next('down');
      assert.equal((down.live as { live: boolean }).live, false);
      assert.ok((down.live as { stalledMs: number }).stalledMs > 1000);
      assert.deepEqual((down.ready as { status: number }).status, 503);
      assert.equal((down.ready as { body: { ready: boolean } }).body.ready, false);
      await next('back');
    } finally {
      await prober.terminate();
    }
  });

  test('a control port already taken stops start-up with PERCH_ERR_PORT_IN_USE', async () => {
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    const port = (taken.address() as { port: number }).port;
    const runtime = new Runtime(parseConfig({ dataDir: dir, server: { port: 0, control: { port } }, models: { repository: repo }, log: { level: 'silent' } }), { log: silentLogger() });
    try {
      await assert.rejects(runtime.start(), (err: Error & { code?: string }) => err.code === 'PERCH_ERR_PORT_IN_USE' && err.message.includes(String(port)));
    } finally {
      await runtime.stop(); // the modules that started before the API
      taken.close();
    }
  });
});
