// A request body read by readBody is not held by the request once it is read
// (runtime/api/http/body.ts; docs/reliability.md "Where the memory goes"): its listeners stayed on
// the request until the request was collected, and through them the chunks and the body, three
// times what the client budget charged while the request waited for its answer.
import assert from 'node:assert/strict';
import { createServer, request, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { ClientBudget } from '../../runtime/api/client-budget.js';
import { readBody } from '../../runtime/api/http/body.js';
import { fullCollection } from '../../runtime/base/full-collection.js';

const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

test('a body read in full is not kept alive by its request', async (t) => {
  const gc = fullCollection();
  if (gc === null) return t.skip('V8 gc not exposable in this process');
  const budget = new ClientBudget(64 * 1024 * 1024);
  const requests: IncomingMessage[] = []; // the requests stay alive, as pipelined ones do
  let body: WeakRef<Buffer> | null = null;
  const server = createServer((req, res) => {
    requests.push(req);
    readBody(req, 16 * 1024 * 1024, budget, budget.hold()).then((b) => {
      body = new WeakRef(b);
      res.end(String(b.length));
    }, (err: Error) => res.destroy(err));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => server.close());
  const port = (server.address() as AddressInfo).port;
  const answer = await new Promise<string>((resolve, reject) => {
    const req = request({ port, host: '127.0.0.1', method: 'POST', path: '/', headers: { 'content-length': 1_000_000 } }, (res) => {
      let text = '';
      res.on('data', (d: Buffer) => (text += d.toString()));
      res.on('end', () => resolve(text));
    });
    req.on('error', reject);
    req.end(Buffer.alloc(1_000_000, 7));
  });
  assert.equal(answer, '1000000');
  assert.equal(requests.length, 1);
  await tick();
  gc();
  await tick();
  assert.ok(body !== null);
  assert.equal((body as WeakRef<Buffer>).deref(), undefined, 'the body was collected while its request lives');
});
