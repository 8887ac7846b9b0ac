// Request bodies (runtime/api/http/body.ts): a body with a Content-Length of 256 KiB or more is
// copied into one buffer as it arrives instead of joined at its end (docs/reliability.md, the
// 12 MB JSON attack), so these check that path against real sockets: the bytes handed out are the
// bytes sent, whatever the chunking, the budget holds the declared size, and a client that leaves
// mid-body ends the read, its bytes let go. Chunked bodies (no Content-Length) are joined as before.
// An OIP binary body (readSplitBody) is read into its JSON header and its tensor bytes as it
// arrives: the same checks, and the tensor bytes in a buffer of their own.
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { connect } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { ClientBudget } from '../../runtime/api/client-budget.js';
import { readBody, readSplitBody, type SplitBody } from '../../runtime/api/http/body.js';
import { waitFor } from '../helpers/wait.js';

const LIMIT = 16 * 1024 * 1024;

describe('readBody', () => {
  const budget = new ClientBudget(64 * 1024 * 1024);
  let server: Server;
  let port = 0;
  const outcomes: Array<Buffer | SplitBody | Error> = [];
  let held = 0;

  before(async () => {
    server = createServer((req: IncomingMessage, res) => {
      const hold = budget.hold();
      // `X-Split: n`: read as an OIP binary body whose JSON header is n bytes long (readSplitBody).
      const split = req.headers['x-split'];
      const read: Promise<Buffer | SplitBody> = split === undefined ? readBody(req, LIMIT, budget, hold) : readSplitBody(req, LIMIT, budget, hold, Number(split));
      read.then(
        (body) => {
          held = budget.heldBytes;
          outcomes.push(body);
          hold.release();
          res.end(String(Buffer.isBuffer(body) ? body.length : body.json.length + body.binary.length));
        },
        (err: Error) => {
          outcomes.push(err);
          hold.release();
          res.destroy();
        },
      );
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as { port: number }).port;
  });
  after(() => new Promise<void>((resolve) => server.close(() => resolve())));

  /** Sends a request head and then `pieces` one write each; resolves with the answer text. */
  function send(head: string, pieces: Buffer[], endEarly = false): Promise<string> {
    return new Promise((resolve) => {
      const s = connect(port, '127.0.0.1');
      let answer = '';
      s.on('data', (d: Buffer) => (answer += d.toString('latin1')));
      s.on('close', () => resolve(answer));
      s.on('error', () => undefined);
      s.once('connect', () => {
        s.write(head);
        for (const p of pieces) s.write(p);
        if (endEarly) s.destroy();
        else s.end();
      });
    });
  }

  const bytes = (n: number): Buffer => Buffer.from(Array.from({ length: n }, (_, i) => (i * 7 + (i >> 11)) & 0xff));

  test('a declared body of 3 MiB sent in uneven pieces comes out byte for byte, the budget holding its size', async () => {
    const body = bytes(3 * 1024 * 1024);
    const pieces: Buffer[] = [];
    for (let at = 0, k = 1; at < body.length; k++) {
      const n = Math.min(body.length - at, 1000 * k);
      pieces.push(body.subarray(at, at + n));
      at += n;
    }
    outcomes.length = 0;
    const answer = await send(`POST / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: ${body.length}\r\n\r\n`, pieces);
    assert.match(answer, /^HTTP\/1.1 200/);
    const got = outcomes[0];
    assert.ok(Buffer.isBuffer(got), String(got));
    assert.equal(Buffer.compare(got, body), 0, 'the bytes handed out are the bytes sent');
    assert.equal(held, body.length, 'the declared size was held while it was read');
    assert.equal(budget.heldBytes, 0);
  });

  test('small declared bodies and chunked bodies come out whole too', async () => {
    for (const n of [0, 1, 5000]) {
      const body = bytes(n);
      outcomes.length = 0;
      await send(`POST / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: ${n}\r\n\r\n`, [body]);
      assert.ok(Buffer.isBuffer(outcomes[0]) && Buffer.compare(outcomes[0], body) === 0, `${n} bytes`);
    }
    const body = bytes(400_000);
    const chunked = [body.subarray(0, 300_000), body.subarray(300_000)].map((p) => Buffer.concat([Buffer.from(`${p.length.toString(16)}\r\n`), p, Buffer.from('\r\n')]));
    outcomes.length = 0;
    await send('POST / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n', [...chunked, Buffer.from('0\r\n\r\n')]);
    assert.ok(Buffer.isBuffer(outcomes[0]) && Buffer.compare(outcomes[0], body) === 0, 'chunked body');
  });

  test('a binary body is read into its header and its tensor bytes, byte for byte whatever the chunking; the tensors own their buffer', async () => {
    const body = bytes(200_003);
    const pieces: Buffer[] = [];
    for (let at = 0, k = 1; at < body.length; k++) {
      const n = Math.min(body.length - at, 997 * k);
      pieces.push(body.subarray(at, at + n));
      at += n;
    }
    for (const n of [0, 1, 13, 997, 5000, 196_000, body.length]) {
      outcomes.length = 0;
      const answer = await send(`POST / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Split: ${n}\r\nContent-Length: ${body.length}\r\n\r\n`, pieces);
      assert.match(answer, /^HTTP\/1.1 200/);
      const got = outcomes[0] as SplitBody;
      assert.ok(got && Buffer.isBuffer(got.json) && Buffer.isBuffer(got.binary), String(got));
      assert.equal(Buffer.compare(got.json, body.subarray(0, n)), 0, `header of ${n} bytes`);
      assert.equal(Buffer.compare(got.binary, body.subarray(n)), 0, `tensor bytes after ${n}`);
      // Past Buffer's pool size the tensor bytes are a buffer of their own from offset 0:
      // aligned for any datatype, and a single input can be moved to a session thread whole.
      if (got.binary.length >= 4096) assert.ok(got.binary.byteOffset === 0 && got.binary.buffer.byteLength === got.binary.length, `own buffer after ${n}`);
      assert.equal(held, body.length, 'the declared size was held while it was read');
      assert.equal(budget.heldBytes, 0);
    }
  });

  test('a binary body is refused as any body: over the limit, or its client leaving mid-body', async () => {
    outcomes.length = 0;
    await send(`POST / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Split: 10\r\nContent-Length: ${LIMIT + 1}\r\n\r\n`, [bytes(100)]);
    await waitFor(() => outcomes.length === 1, 20_000, 'the refusal');
    assert.equal((outcomes[0] as NodeJS.ErrnoException).code, 'PERCH_ERR_REQUEST_TOO_LARGE');
    outcomes.length = 0;
    await send(`POST / HTTP/1.1\r\nHost: x\r\nX-Split: 10\r\nContent-Length: ${2 * 1024 * 1024}\r\n\r\n`, [bytes(512 * 1024)], true);
    await waitFor(() => outcomes.length === 1, 20_000, 'the read to end');
    const err = outcomes[0] as NodeJS.ErrnoException;
    assert.ok(err instanceof Error, String(err));
    assert.ok(['ECONNRESET', 'PERCH_ERR_CLIENT_GONE'].includes(err.code ?? ''), String(err));
    assert.equal(budget.heldBytes, 0);
  });

  test('a client that leaves mid-body ends the read with an error and holds nothing after', async () => {
    outcomes.length = 0;
    await send(`POST / HTTP/1.1\r\nHost: x\r\nContent-Length: ${2 * 1024 * 1024}\r\n\r\n`, [bytes(512 * 1024)], true);
    await waitFor(() => outcomes.length === 1, 20_000, 'the read to end');
    // Node's own 'aborted' error (ECONNRESET) or PERCH_ERR_CLIENT_GONE, whichever comes first.
    const err = outcomes[0] as NodeJS.ErrnoException;
    assert.ok(err instanceof Error, String(err));
    assert.ok(['ECONNRESET', 'PERCH_ERR_CLIENT_GONE'].includes(err.code ?? ''), String(err));
    assert.equal(budget.heldBytes, 0);
  });
});
