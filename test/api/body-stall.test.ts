// A request body that stops arriving (docs/api.md "Load shedding"; red-team pass): its declared
// length is held of the client budget from its headers (9 times it for JSON), so a few
// connections that declared bodies and sent none held most of the budget until Node's
// requestTimeout (300 s). Now nothing arriving for server.slowReaderTimeoutMs is 408
// PERCH_ERR_BODY_TIMEOUT with Connection: close, the connection ends and everything is given
// back; a body that comes in pieces with shorter pauses is read as before.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { MODEL_FILES } from '../helpers/paths.js';
import { RawHttp } from '../helpers/raw-http.js';
import { TempRepository } from '../helpers/repository.js';
import { startRuntime, type TestRuntime } from '../helpers/runtime.js';
import { waitFor } from '../helpers/wait.js';

const STALL_MS = 1500; // the 408 comes 4 s after it (runtime.ts BODY_STALL_GRACE_MS)
let repo: TempRepository;
let rt: TestRuntime;

before(async () => {
  repo = new TempRepository({ vad: { versions: { 1: MODEL_FILES.sileroVad } } });
  rt = await startRuntime(repo.dir, { server: { slowReaderTimeoutMs: STALL_MS } });
});
after(async () => {
  await rt.stop();
  repo.remove();
});

const body = JSON.stringify({
  inputs: [
    { name: 'input', shape: [1, 576], datatype: 'FP32', data: new Array<number>(576).fill(0) },
    { name: 'state', shape: [2, 1, 128], datatype: 'FP32', data: new Array<number>(256).fill(0) },
    { name: 'sr', shape: [], datatype: 'INT64', data: [16000] },
  ],
});
/** An answer within `ms`, or a failure saying what was awaited (before: none for 300 s). */
function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([p, new Promise<T>((_, reject) => (timer = setTimeout(() => reject(new Error(`no ${what} within ${ms} ms`)), ms)))]).finally(() => clearTimeout(timer));
}
const head = (length: number): string => `POST /v2/models/vad/infer HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: ${length}\r\n\r\n`;

test('bodies that stop arriving: 408 PERCH_ERR_BODY_TIMEOUT, the connection closes, the budget is given back', async () => {
  const budget = rt.runtime.clientBudget;
  const port = rt.runtime.address.port;
  // One declares 3 MB and sends nothing; one sends half of its body and stops.
  const silent = await RawHttp.connect(port);
  silent.write(head(3_000_000));
  const half = await RawHttp.connect(port);
  half.write(head(body.length) + body.slice(0, body.length >> 1));
  try {
    await waitFor(() => budget.heldBytes > 3_000_000, 10_000, () => `held ${budget.heldBytes}`);
    for (const c of [silent, half]) {
      const a = await within(c.next(), 20_000, 'answer to a stalled body');
      assert.equal(a.status, 408, a.text);
      assert.equal(a.json?.code, 'PERCH_ERR_BODY_TIMEOUT');
      assert.equal(a.headers.connection, 'close');
      await within(c.closed, 10_000, 'close');
    }
    await waitFor(() => budget.heldBytes === 0, 10_000, () => `held ${budget.heldBytes}`);
  } finally {
    silent.destroy();
    half.destroy();
  }
});

test('a body that comes in pieces with short pauses is read whole and answered', async () => {
  const c = await RawHttp.connect(rt.runtime.address.port);
  try {
    c.write(head(body.length));
    const pieces = 4;
    const step = Math.ceil(body.length / pieces);
    for (let i = 0; i < pieces; i++) {
      await new Promise((resolve) => setTimeout(resolve, 30));
      c.write(body.slice(i * step, (i + 1) * step));
    }
    const a = await c.next();
    assert.equal(a.status, 200, a.text);
    assert.notEqual(a.headers.connection, 'close');
  } finally {
    c.destroy();
  }
});
