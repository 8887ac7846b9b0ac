// `perch fleet serve --http`'s model server (cloud-sync/fleet/serve/http-models.ts) over a real
// fleet store and real sockets: whole files, single ranges in all three forms, HEAD, and the
// answers for what it does not serve.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { pino } from 'pino';
import { startHttpModels, type HttpModels } from '../../cloud-sync/fleet/serve/http-models.js';
import { newStats } from '../../cloud-sync/fleet/serve/stats.js';
import { ModelFiles } from '../../cloud-sync/fleet/store/model-files.js';
import { putModel } from '../../cloud-sync/fleet/store/model-store.js';
import { TempDirs } from './harness.js';

describe('fleet serve --http: the model store over HTTP', () => {
  const temp = new TempDirs();
  const bytes = randomBytes(200_000);
  const stats = newStats();
  let files: ModelFiles;
  let http: HttpModels;
  let url: string;

  before(async () => {
    const store = temp.make();
    const src = join(store, 'src.onnx');
    writeFileSync(src, bytes);
    putModel(store, 'm', { version: 3, sha256: 'a'.repeat(64), size: bytes.length, chunkSize: 65536 }, src);
    files = new ModelFiles(store);
    http = await startHttpModels({ files, host: '127.0.0.1', port: 0, log: pino({ level: 'silent' }), stats });
    url = http.urlOf('m', 3);
  });
  after(async () => {
    await http.close();
    await files.close();
    temp.cleanup();
  });

  const get = async (headers: Record<string, string> = {}, method = 'GET', at = url): Promise<{ status: number; headers: Headers; body: Buffer }> => {
    const res = await fetch(at, { method, headers });
    return { status: res.status, headers: res.headers, body: Buffer.from(await res.arrayBuffer()) };
  };

  test('the whole file without Range; bytes a-b, a- and -n as 206 with Content-Range', async () => {
    assert.equal(url, `http://127.0.0.1:${http.port}/models/m/3/model.onnx`);
    const whole = await get();
    assert.equal(whole.status, 200);
    assert.equal(whole.headers.get('accept-ranges'), 'bytes');
    assert.ok(whole.body.equals(bytes));
    const mid = await get({ range: 'bytes=65536-131071' });
    assert.equal(mid.status, 206);
    assert.equal(mid.headers.get('content-range'), `bytes 65536-131071/${bytes.length}`);
    assert.ok(mid.body.equals(bytes.subarray(65536, 131072)));
    const tail = await get({ range: 'bytes=199990-' });
    assert.ok(tail.body.equals(bytes.subarray(199990)));
    const suffix = await get({ range: 'bytes=-7' });
    assert.equal(suffix.headers.get('content-range'), `bytes ${bytes.length - 7}-${bytes.length - 1}/${bytes.length}`);
    assert.ok(suffix.body.equals(bytes.subarray(bytes.length - 7)));
    // Past the end is cut at the end.
    assert.equal((await get({ range: 'bytes=199999-500000' })).body.length, 1);
    // Several ranges: served whole (RFC 9110 lets a server ignore Range).
    assert.equal((await get({ range: 'bytes=0-1,5-6' })).status, 200);
    const head = await get({ range: 'bytes=0-9' }, 'HEAD');
    assert.equal(head.status, 206);
    assert.equal(head.headers.get('content-length'), '10');
    assert.equal(head.body.length, 0);
  });

  test('a range past the end is 416; unknown versions, other paths and methods get coded errors', async () => {
    const r416 = await get({ range: `bytes=${bytes.length}-` });
    assert.equal(r416.status, 416);
    assert.equal(r416.headers.get('content-range'), `bytes */${bytes.length}`);
    assert.equal((JSON.parse(r416.body.toString()) as { code: string }).code, 'PERCH_ERR_RANGE_NOT_SATISFIABLE');
    const missing = await get({}, 'GET', http.urlOf('m', 4));
    assert.equal(missing.status, 404);
    assert.equal((JSON.parse(missing.body.toString()) as { code: string }).code, 'PERCH_ERR_FLEET_MODEL_MISSING');
    for (const path of ['/models/m/3/spec.json', '/models/..%2F..%2Fetc/3/model.onnx', '/models/m/0/model.onnx', '/']) {
      const r = await get({}, 'GET', `http://127.0.0.1:${http.port}${path}`);
      assert.equal(r.status, 404, path);
      assert.equal((JSON.parse(r.body.toString()) as { code: string }).code, 'PERCH_ERR_ROUTE_NOT_FOUND', path);
    }
    const post = await get({}, 'POST');
    assert.equal(post.status, 405);
    assert.equal(post.headers.get('allow'), 'GET, HEAD');
    assert.equal(stats.httpRequests, 7, "the answers with a body or its headers of the test before");
    assert.ok(stats.httpBytesSent >= 2 * bytes.length);
  });
});
