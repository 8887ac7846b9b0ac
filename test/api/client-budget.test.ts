// The process-wide client budget and what a closed connection gives back (issue 12,
// docs/reliability.md). Bodies held open by clients are counted and refused past the budget
// with 429 PERCH_ERR_OVERLOADED, before their bytes are read; JSON is charged for what it
// expands to; a WebSocket client that never reads is cut off after slowReaderTimeoutMs; a
// connection that closes drops the work it queued and gives back every byte it held. The state
// is read from the runtime (Runtime.clientBudget, the batcher's depth); every wait is for a
// condition.
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import WebSocket from 'ws';
import { waitFor, WsClient } from '../helpers/clients.js';
import { vadInputs } from '../helpers/models.js';
import { MODEL_FILES } from '../helpers/paths.js';
import { TempRepository } from '../helpers/repository.js';
import { startRuntime, type TestRuntime } from '../helpers/runtime.js';
import { batcherOf, vadModelJson } from '../helpers/scenarios.js';
import { binaryFrame, binaryParts, inferBody, metricValue, postJson, rawRequest, scrape } from '../helpers/wire.js';
import { ClientBudget, JSON_PARSE_PEAK, takeJsonCost } from '../../runtime/api/client-budget.js';
import type { PerchError } from '../../runtime/base/errors.js';

const BUDGET = 1024 * 1024;
const BATCH = 16;
/** What holdBody's body holds from its headers: its bytes, and the parse of its 64-byte JSON header. */
const HELD_BODY = (declared: number): number => declared + 64 * (JSON_PARSE_PEAK - 1);

/**
 * Sends the head of a POST and `sent` bytes of its body, then holds the connection open. The body
 * is an OIP binary one with a small JSON header: a JSON body of 400 KB would be refused from its
 * headers with this 1 MiB budget (parsing it could take 9 times its size, client-budget.ts).
 */
async function holdBody(port: number, declared: number, sent: number): Promise<{ socket: Socket; received: () => string }> {
  const socket = connect(port, '127.0.0.1');
  let text = '';
  socket.on('data', (d: Buffer) => (text += d.toString('latin1')));
  socket.on('error', () => undefined);
  await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
  socket.write(`POST /v2/models/vad/infer HTTP/1.1\r\nHost: 127.0.0.1\r\nInference-Header-Content-Length: 64\r\nContent-Length: ${declared}\r\n\r\n`);
  socket.write(Buffer.alloc(sent, 0x20));
  return { socket, received: () => text };
}

describe('client budget', () => {
  let repo: TempRepository;
  let rt: TestRuntime;
  let port: number;

  before(async () => {
    repo = new TempRepository({
      vad: { versions: { 1: MODEL_FILES.sileroVad16k }, config: vadModelJson(64) },
      // Requests wait here until the client goes: a batch forms only when 64 are queued or 10 s pass.
      slow: { versions: { 1: MODEL_FILES.sileroVad16k }, config: vadModelJson(64, { maxQueueDelayMs: 10_000, preferredBatchSizes: [64] }) },
    });
    rt = await startRuntime(repo.dir, {
      server: { maxClientBytes: BUDGET, maxRequestBytes: 4 * BUDGET, maxBufferedBytesPerConnection: 64 * 1024, slowReaderTimeoutMs: 300 },
    });
    port = Number(new URL(rt.baseUrl).port);
  });
  after(async () => {
    await rt?.stop();
    repo?.remove();
  });

  const held = (): number => rt.runtime.clientBudget.heldBytes;

  test('bodies held open count against the budget; past it: 429 at the headers; back to 0 when the clients go', async () => {
    const a = await holdBody(port, 400_000, 1000);
    const b = await holdBody(port, 400_000, 1000);
    await waitFor(() => held() === 2 * HELD_BODY(400_000), 10_000, 'both declared bodies held');
    // The third does not fit: refused from its headers, while its body is still unsent.
    const c = await holdBody(port, 400_000, 0);
    await waitFor(() => c.received().includes('\r\n\r\n{'), 10_000, 'an answer to the third');
    assert.match(c.received(), /^HTTP\/1\.1 429 /);
    assert.match(c.received(), /PERCH_ERR_OVERLOADED/);
    // A body larger than the whole budget can never fit: 413, not "retry later".
    const big = await rawRequest(rt.baseUrl, 'POST', '/v2/models/vad/infer', { body: Buffer.alloc(BUDGET + 1, 0x20) });
    assert.equal(big.status, 413);
    assert.equal(big.json?.code, 'PERCH_ERR_REQUEST_TOO_LARGE');
    for (const s of [a, b, c]) s.socket.destroy();
    await waitFor(() => held() === 0, 10_000, 'every held byte given back');
    assert.equal((await postJson(rt.baseUrl, '/v2/models/vad/infer', inferBody(vadInputs(1)))).status, 200, 'served again');
    assert.ok(metricValue(await scrape(rt.baseUrl), 'perch_client_refusals_total') >= 1);
  });

  test('JSON is charged for what it parses into: a body that would expand past the budget gets 413', async () => {
    // 300 KB of zeros fits maxRequestBytes, but parsed it would hold about 9 x 300 KB > 1 MiB.
    const zeros = `{"inputs":[{"name":"input","datatype":"FP32","shape":[1,150000],"data":[${'0,'.repeat(149_999)}0]}]}`;
    const r = await postJson(rt.baseUrl, '/v2/models/vad/infer', zeros);
    assert.equal(r.status, 413, r.text);
    assert.match(String(r.json?.error), /expand/);
    await waitFor(() => held() === 0, 10_000, 'the body given back');
  });

  test('a JSON body is charged its parse from its headers: 429 before a byte of it is read when that does not fit now', async () => {
    const a = await holdBody(port, 400_000, 1000);
    await waitFor(() => held() === HELD_BODY(400_000), 10_000, 'the binary body held');
    // 100 KB of JSON may take 9 x 100 KB to parse: with 400 KB held that is past the 1 MiB
    // budget, so it is refused from its headers alone (charged once read, it was read whole
    // first, and the JSON attack's bodies read only to be refused were most of its peak).
    const json = connect(port, '127.0.0.1');
    let text = '';
    json.on('data', (d: Buffer) => (text += d.toString('latin1')));
    json.on('error', () => undefined);
    await new Promise<void>((resolve) => json.once('connect', () => resolve()));
    json.write(`POST /v2/models/vad/infer HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n`);
    await waitFor(() => text.includes('\r\n\r\n{'), 10_000, 'an answer before the body');
    assert.match(text, /^HTTP\/1\.1 429 /);
    assert.match(text, /PERCH_ERR_OVERLOADED/);
    json.destroy();
    a.socket.destroy();
    await waitFor(() => held() === 0, 10_000, 'every held byte given back');
    // With room for its parse, the same size is served.
    const body = JSON.stringify(inferBody(vadInputs(2)));
    const r = await postJson(rt.baseUrl, '/v2/models/vad/infer', body + ' '.repeat(100_000 - body.length));
    assert.equal(r.status, 200, r.text);
  });

  test('a WebSocket frame that does not fit is answered PERCH_ERR_OVERLOADED, with its id; the connection stays usable', async () => {
    const ws = await WsClient.connect(rt.wsUrl);
    try {
      const zeros = `{"id":"big","op":"infer","model":"vad","inputs":[{"name":"input","datatype":"FP32","shape":[1,150000],"data":[${'0,'.repeat(149_999)}0]}]}`;
      const p = new Promise<Record<string, unknown>>((resolve) => ws.socket.once('message', (d: Buffer) => resolve(JSON.parse(d.toString()) as Record<string, unknown>)));
      ws.sendRaw(zeros, false);
      const answer = await p;
      assert.equal(answer.id, 'big');
      assert.equal((answer.error as { code: string }).code, 'PERCH_ERR_OVERLOADED');
      assert.equal((await ws.infer('vad', vadInputs(2))).ok, true);
    } finally {
      await ws.close();
    }
    await waitFor(() => held() === 0, 10_000, 'every held byte given back');
  });

  test('a WebSocket frame still arriving counts against the budget; one that finds no room closes its connection with 1013', async () => {
    // ws holds a frame until it is whole (up to maxFrameBytes per connection): those bytes were
    // not charged, so clients part-way through large frames could hold any amount.
    const partialFrame = async (declared: number, sent: number): Promise<WebSocket> => {
      const ws = new WebSocket(rt.wsUrl, { perMessageDeflate: false });
      await new Promise<void>((resolve, reject) => {
        ws.once('open', () => resolve());
        ws.once('error', reject);
      });
      ws.on('error', () => undefined);
      // A binary frame, masked (key 0) as a client's must be, declaring `declared` bytes; `sent` of them go out.
      const head = Buffer.alloc(14);
      head[0] = 0x82;
      head[1] = 0x80 | 127;
      head.writeBigUInt64BE(BigInt(declared), 2);
      // eslint-disable-next-line @typescript-eslint/no-explicit-any -- ws keeps its net.Socket private
      ((ws as any)._socket as Socket).write(Buffer.concat([head, Buffer.alloc(sent)]));
      return ws;
    };
    const a = await partialFrame(900_000, 600_000);
    await waitFor(() => held() >= 600_000, 10_000, 'the unfinished frame charged');
    const b = await partialFrame(900_000, 600_000);
    const code = await new Promise<number>((resolve) => b.once('close', (c: number) => resolve(c)));
    assert.equal(code, 1013, 'try again later');
    assert.equal(a.readyState, WebSocket.OPEN, 'the first connection goes on');
    a.terminate();
    b.terminate();
    await waitFor(() => held() === 0, 10_000, 'every held byte given back');
  });

  test('a WebSocket client that never reads is cut off; what it held is given back', async () => {
    const slow = new WebSocket(rt.wsUrl, { perMessageDeflate: false });
    await new Promise<void>((resolve, reject) => {
      slow.once('open', () => resolve());
      slow.once('error', reject);
    });
    slow.on('error', () => undefined);
    // eslint-disable-next-line @typescript-eslint/no-explicit-any -- ws keeps its net.Socket private
    const socket = (slow as any)._socket as Socket;
    socket.pause(); // never reads again
    const parts = binaryParts(vadInputs(11, BATCH));
    const headers = parts.map((p) => p.header);
    // Answers of about 80 KB each (stateN as JSON), sent until the loopback buffers are full and
    // Perch holds the rest: then the client is cut off.
    let i = 0;
    await waitFor(() => {
      if (slow.readyState === WebSocket.OPEN && slow.bufferedAmount < 1024 * 1024) {
        for (let k = 0; k < 20; k++, i++) {
          slow.send(binaryFrame({ id: `q${i}`, op: 'infer', model: 'vad', inputs: headers, parameters: { binary_data_output: false } }, parts.map((p) => p.bytes)));
        }
      }
      return rt.runtime.ws.connectionStats().some((s) => s.bufferedAmount > 64 * 1024);
    }, 30_000, 'answers left unread in Perch');
    await waitFor(() => rt.runtime.ws.connectionCount === 0, 30_000, 'the slow reader cut off');
    await waitFor(() => held() === 0, 10_000, 'its answers given back');
    slow.terminate();
  });

  test('pipelined HTTP requests whose connection closes before their turn give back their bytes', async () => {
    // Node emits 'close' only on the response that has the socket; the two behind it never got
    // one, and what they held stayed counted (63 MB after the infer flood of docs/reliability.md).
    const body = Buffer.from(JSON.stringify(inferBody(vadInputs(3))));
    const one = `POST /v2/models/slow/infer HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n`;
    const socket = connect(port, '127.0.0.1');
    socket.on('error', () => undefined);
    await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
    socket.write(Buffer.concat([Buffer.from(one), body, Buffer.from(one), body, Buffer.from(one), body]));
    await waitFor(() => batcherOf(rt, 'slow').depth === 3, 10_000, 'three pipelined requests queued');
    assert.ok(held() > 0, 'their bodies are held');
    socket.destroy();
    await waitFor(() => batcherOf(rt, 'slow').depth === 0, 10_000, 'the queue emptied');
    await waitFor(() => held() === 0, 10_000, 'every held byte given back');
  });

  test('a closed connection drops the work it queued and gives back its bytes', async () => {
    const gone = (text: string): number => metricValue(text, 'perch_inference_request_failure_total', { model: 'slow', code: 'PERCH_ERR_CLIENT_GONE' });
    const goneBefore = gone(await scrape(rt.baseUrl));
    const ws = await WsClient.connect(rt.wsUrl);
    for (let i = 0; i < 5; i++) void ws.infer('slow', vadInputs(20 + i));
    await waitFor(() => batcherOf(rt, 'slow').depth === 5, 10_000, 'five requests queued');
    assert.ok(held() > 0, 'queued frames are held');
    ws.socket.terminate();
    await waitFor(() => batcherOf(rt, 'slow').depth === 0, 10_000, 'the queue emptied');
    await waitFor(() => held() === 0, 10_000, 'every held byte given back');
    const text = await scrape(rt.baseUrl);
    assert.equal(gone(text) - goneBefore, 5);
    assert.equal(metricValue(text, 'perch_inference_request_success_total', { model: 'slow' }), 0, 'none was run');
  });
});

test('an HTTP JSON body holds its parse peak until it is answered: large ones are admitted one or two at a time', () => {
  // The campaign's 12 MB bodies, charged 4x, were admitted two or three at once and RSS peaked
  // at 500-640 MB (docs/reliability.md): the garbage of each parse stays until V8 collects.
  const budget = new ClientBudget(1024 * 1024);
  const first = budget.hold();
  first.add(100_000); // the body, read
  takeJsonCost(budget, first, 100_000);
  assert.equal(budget.heldBytes, 100_000 * JSON_PARSE_PEAK);
  const second = budget.hold();
  second.add(100_000);
  assert.throws(() => takeJsonCost(budget, second, 100_000), (e: PerchError) => e.code === 'PERCH_ERR_OVERLOADED');
  first.release();
  takeJsonCost(budget, second, 100_000);
  second.release();
  assert.equal(budget.heldBytes, 0);
});
