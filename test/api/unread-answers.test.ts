// Answers left unread have a share of the client budget (issue 12, docs/reliability.md "Clients
// that go away, and clients that do not read"): once answers not handed to the kernel hold more
// than a quarter of server.maxClientBytes, a WebSocket connection with more than 64 KiB of them
// (not read from already) is cut off if they stay unread for slowReaderTimeoutMs, before the
// budget is spent; a client that reads its answers is served all the while. A paused connection
// reads nothing more from its socket: what its client sends waits in the kernel, and every frame
// is answered once it reads again. Real sockets and the shipped VAD model; every wait is for a
// condition.
import assert from 'node:assert/strict';
import type { Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import WebSocket from 'ws';
import { waitFor, WsClient } from '../helpers/clients.js';
import { vadInputs } from '../helpers/models.js';
import { MODEL_FILES } from '../helpers/paths.js';
import { TempRepository } from '../helpers/repository.js';
import { startRuntime, type TestRuntime } from '../helpers/runtime.js';
import { vadModelJson } from '../helpers/scenarios.js';
import { binaryFrame, binaryParts } from '../helpers/wire.js';

const BUDGET = 4 * 1024 * 1024;
const BATCH = 16;

async function openWs(url: string): Promise<WebSocket> {
  const ws = new WebSocket(url, { perMessageDeflate: false });
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  ws.on('error', () => undefined);
  return ws;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- ws keeps its net.Socket private
const tcpOf = (ws: WebSocket): Socket => (ws as any)._socket as Socket;

describe('unread answers', () => {
  let repo: TempRepository;
  let rt: TestRuntime;

  before(async () => {
    repo = new TempRepository({
      vad: { versions: { 1: MODEL_FILES.sileroVad16k }, config: vadModelJson(64) },
      // Requests wait here: a batch forms only when 64 are queued or 5 s pass.
      slow: { versions: { 1: MODEL_FILES.sileroVad16k }, config: vadModelJson(64, { maxQueueDelayMs: 5000, preferredBatchSizes: [64] }) },
    });
    rt = await startRuntime(repo.dir, {
      // The per-connection bound (8 MiB, the default) is not what cuts these clients off: the unread share (1 MiB) is.
      server: { maxClientBytes: BUDGET, maxRequestBytes: BUDGET, maxInflightPerConnection: 4, maxBufferedBytesPerConnection: 8 * 1024 * 1024, slowReaderTimeoutMs: 500 },
    });
  });
  after(async () => {
    await rt?.stop();
    repo?.remove();
  });

  test('clients that leave their answers unread stop being read, and are cut off past the unread share before the budget is spent; a reading client is served', async () => {
    const budget = rt.runtime.clientBudget;
    assert.equal(budget.unreadLimit, BUDGET / 4);
    const honest = await WsClient.connect(rt.wsUrl);
    const readers = await Promise.all([0, 1, 2, 3, 4].map(() => openWs(rt.wsUrl)));
    for (const ws of readers) tcpOf(ws).pause(); // never read
    const parts = binaryParts(vadInputs(5, BATCH));
    const headers = parts.map((p) => p.header);
    let i = 0;
    // Answers of about 80 KB each (stateN as JSON), sent until the loopback buffers are full and
    // Perch holds more than the unread share.
    await waitFor(() => {
      for (const ws of readers) {
        if (ws.readyState !== WebSocket.OPEN || ws.bufferedAmount >= 512 * 1024) continue;
        for (let k = 0; k < 8; k++, i++) {
          ws.send(binaryFrame({ id: `q${i}`, op: 'infer', model: 'vad', inputs: headers, parameters: { binary_data_output: false } }, parts.map((p) => p.bytes)));
        }
      }
      return budget.unreadBytes > budget.unreadLimit || rt.runtime.ws.connectionCount < 6;
    }, 60_000, () => `unread answers past their share: unread ${budget.unreadBytes} held ${budget.heldBytes} ${JSON.stringify(rt.runtime.ws.connectionStats())}`);
    // Meanwhile a client that reads is answered.
    assert.equal((await honest.infer('vad', vadInputs(2))).ok, true);
    // Those whose answers stay unread while the share is passed are cut off (1008), until what
    // the others hold is within it again; the others stay paused, read no more and hold little.
    await waitFor(() => rt.runtime.ws.connectionCount < 6, 30_000, 'a client that does not read cut off');
    await waitFor(() => budget.unreadBytes <= budget.unreadLimit, 30_000, 'unread answers back within their share');
    assert.ok(budget.peakBytes < budget.limit, `the budget was never spent (peak ${budget.peakBytes} of ${budget.limit})`);
    assert.equal((await honest.infer('vad', vadInputs(3))).ok, true);
    await honest.close();
    for (const ws of readers) ws.terminate();
    await waitFor(() => budget.heldBytes === 0 && budget.unreadBytes === 0, 10_000, 'every held byte given back');
  });

  test('a paused connection reads nothing more from its socket, and answers every frame once it reads again', async () => {
    const ws = await openWs(rt.wsUrl);
    const answers = new Map<string, boolean>();
    ws.on('message', (d: Buffer, isBinary: boolean) => {
      const m = JSON.parse((isBinary ? d.subarray(4, 4 + d.readUInt32LE(0)) : d).toString()) as { id: string; ok: boolean };
      answers.set(m.id, m.ok);
    });
    const parts = binaryParts(vadInputs(7, 1));
    const headers = parts.map((p) => p.header);
    const frame = (id: string, model: string): Buffer => binaryFrame({ id, op: 'infer', model, inputs: headers }, parts.map((p) => p.bytes));
    // Four requests wait in the slow model's queue (maxInflightPerConnection: the connection
    // pauses), and more come behind them until the client's own socket backs up: the kernel holds
    // what Perch does not read.
    const tcp = tcpOf(ws);
    for (let k = 0; k < 4; k++) ws.send(frame(`s${k}`, 'slow'));
    let frames = 0;
    while (tcp.writableLength === 0 && frames < 20_000) {
      for (let k = 0; k < 100; k++, frames++) ws.send(frame(`r${frames}`, 'vad'));
      await new Promise((r) => setImmediate(r));
    }
    const stats = () => rt.runtime.ws.connectionStats().find((s) => s.remotePort === tcp.localPort);
    // Before socket-reads.ts Perch read 64 KiB more right after the pause.
    await waitFor(() => stats()?.paused === true, 10_000, 'paused');
    // Past the poll phase that follows (where the read would come): the loop has looked at the socket.
    for (let k = 0; k < 2; k++) await new Promise((r) => setImmediate(r));
    assert.ok(stats()?.paused, 'still paused (the slow model holds its four for 5 s)');
    assert.equal(stats()?.readBufferBytes, 0, 'nothing read past the pause');
    await waitFor(() => answers.size === frames + 4, 60_000, 'every frame answered');
    assert.ok([...answers.values()].every((ok) => ok), 'every answer a result');
    ws.terminate();
  });
});
