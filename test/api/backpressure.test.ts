// Per-connection backpressure (issue 2, APIs): a WebSocket client that never reads must not grow
// the server's memory without bound. A raw client stops reading (its socket is paused) and sends
// far more requests with large answers than the kernel's socket buffers hold. The server must
// stop reading that connection, keep its in-flight count within server.maxInflightPerConnection
// and its buffered answer bytes within 64 KiB (connection.ts UNREAD_PAUSE_BYTES, far under
// server.maxBufferedBytesPerConnection, the default 8 MiB here; plus the answers already in
// flight), go on serving another client, and, once the slow client reads again, deliver every
// answer exactly once. The server side is observed through WsApi.connectionStats()
// (a read-only view added for this test); every wait is for a condition, never a fixed delay.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import WebSocket from 'ws';
import { httpInfer, waitFor, WsClient } from '../helpers/clients.js';
import { vadInputs } from '../helpers/models.js';
import { MODEL_FILES } from '../helpers/paths.js';
import { TempRepository } from '../helpers/repository.js';
import { startRuntime, type TestRuntime } from '../helpers/runtime.js';
import { vadModelJson } from '../helpers/scenarios.js';
import { binaryFrame, binaryParts, metricValue, scrape } from '../helpers/wire.js';
import { UNREAD_PAUSE_BYTES, type ConnectionStats } from '../../runtime/api/ws/connection.js';

const MAX_INFLIGHT = 4;
/** server.maxBufferedBytesPerConnection's default: the slow-reader cut-off's bound, not where reading stops. */
const MAX_BUFFERED = 8 * 1024 * 1024;
/** Items per request: each answer carries stateN [2, 16, 128] as JSON, about 80 KB. */
const BATCH = 16;
/** 400 answers of ~80 KB: about 32 MB, far more than loopback socket buffers hold. */
const REQUESTS = 400;
/** An upper bound on one answer: every float of output and stateN as JSON text of <= 25 characters. */
const ANSWER_MAX = (BATCH + 2 * BATCH * 128) * 25 + 1024;

describe('backpressure: a client that never reads', () => {
  let repo: TempRepository;
  let rt: TestRuntime;

  before(async () => {
    repo = new TempRepository({ vad: { versions: { 1: MODEL_FILES.sileroVad16k }, config: vadModelJson(64) } });
    // The slow client here must be kept waiting, not cut off (that is test/api/client-budget.test.ts).
    rt = await startRuntime(repo.dir, { server: { maxInflightPerConnection: MAX_INFLIGHT, maxBufferedBytesPerConnection: MAX_BUFFERED, slowReaderTimeoutMs: 3_600_000 } });
  });
  after(async () => {
    await rt?.stop();
    repo?.remove();
  });

  function statsOf(localPort: number): ConnectionStats {
    const s = rt.runtime.ws.connectionStats().find((c) => c.remotePort === localPort);
    assert.ok(s, `no server-side connection for client port ${localPort}`);
    return s;
  }

  async function successes(): Promise<number> {
    return metricValue(await scrape(rt.baseUrl), 'perch_inference_request_success_total', { model: 'vad' });
  }

  test('many small pipelined requests: never more than maxInflightPerConnection in flight', async () => {
    // One socket read holds about twenty of these 3 KB frames; all of them must wait their turn.
    const client = await WsClient.connect(rt.wsUrl);
    try {
      const localPort = (client.socket as unknown as { _socket: { localPort: number } })._socket.localPort;
      const results = await Promise.all(Array.from({ length: 200 }, (_, i) => client.infer('vad', vadInputs(300 + i), { binary: true })));
      assert.ok(results.every((r) => r.ok), 'every request answered');
      const s = statsOf(localPort);
      assert.ok(s.peakInflight <= MAX_INFLIGHT, `peak in-flight ${s.peakInflight} <= ${MAX_INFLIGHT}`);
      assert.equal(s.peakInflight, MAX_INFLIGHT, 'the limit was reached (the test exercised it)');
      assert.equal(s.inflight, 0);
    } finally {
      await client.close();
    }
  });

  test('frames refused at once while others are held: each answered once, in flight never past the limit', async () => {
    // An unknown model is refused before anything queues, so its answer is given while the
    // frame is handled, from inside the loop that releases held frames (connection.ts updateFlow).
    const client = await WsClient.connect(rt.wsUrl);
    try {
      const localPort = (client.socket as unknown as { _socket: { localPort: number } })._socket.localPort;
      const tcp = (client.socket as unknown as { _socket: { cork(): void; uncork(): void } })._socket;
      tcp.cork(); // one write: the server reads many frames at once and holds those past the limit
      const sent = Array.from({ length: 1000 }, (_, i) => client.infer(i % 10 === 0 ? 'vad' : 'no-such-model', vadInputs(900 + i), { binary: true }));
      tcp.uncork();
      const results = await Promise.all(sent);
      results.forEach((r, i) => {
        const code = (r.body.error as { code?: string } | undefined)?.code;
        if (i % 10 === 0) assert.ok(r.ok, `request ${i}: ${JSON.stringify(r.body)}`);
        else assert.equal(code, 'PERCH_ERR_MODEL_NOT_FOUND', `request ${i}`);
      });
      await waitFor(() => statsOf(localPort).inflight === 0, 10_000, 'every slot let go');
      const s = statsOf(localPort);
      assert.ok(s.peakInflight <= MAX_INFLIGHT, `peak in-flight ${s.peakInflight} <= ${MAX_INFLIGHT}`);
      assert.equal(client.orphans.length, 0, 'no answer twice or without its request');
    } finally {
      await client.close();
    }
  });

  test('the server stops reading, stays bounded, serves others, and loses nothing', async (t) => {
    const slow = new WebSocket(rt.wsUrl, { perMessageDeflate: false });
    await new Promise<void>((resolve, reject) => {
      slow.once('open', () => resolve());
      slow.once('error', reject);
    });
    const answers = new Map<string, number>();
    let answerBytes = 0;
    let bad: unknown = null;
    slow.on('message', (data: Buffer) => {
      const msg = JSON.parse(data.toString('utf8')) as { id: string; ok: boolean; result?: { outputs: Array<{ name: string; data?: unknown[] }> } };
      answers.set(msg.id, (answers.get(msg.id) ?? 0) + 1);
      answerBytes = Math.max(answerBytes, data.length);
      if (!msg.ok || msg.result?.outputs.find((o) => o.name === 'stateN')?.data?.length !== 2 * BATCH * 128) bad ??= msg;
    });
    // eslint-disable-next-line @typescript-eslint/no-explicit-any -- ws keeps its net.Socket private
    const socket = (slow as any)._socket as import('node:net').Socket;
    const localPort = socket.localPort as number;
    const startCount = await successes();

    try {
      socket.pause(); // the client stops reading; the kernel buffers fill, then the server's
      const parts = binaryParts(vadInputs(11, BATCH));
      const headers = parts.map((p) => p.header);
      for (let i = 0; i < REQUESTS; i++) {
        // Binary request, JSON answer: small requests, large answers.
        slow.send(binaryFrame({ id: `q${i}`, op: 'infer', model: 'vad', inputs: headers, parameters: { binary_data_output: false } }, parts.map((p) => p.bytes)));
      }

      // The server stops reading: paused with nothing in flight and more than UNREAD_PAUSE_BYTES of
      // answers unread, so nothing will wake it but the client reading. (While it still reads,
      // each read is answered and 'inflight' moves. A pause with less unread is the intake's
      // park while the loop lags, runtime/api/intake.ts: it ends by itself, so it does not count.)
      await waitFor(() => {
        const s = statsOf(localPort);
        return s.paused && s.inflight === 0 && s.bufferedAmount > UNREAD_PAUSE_BYTES;
      }, 30_000, 'the server to stop reading the slow connection');
      const answeredWhilePaused = (await successes()) - startCount;
      assert.ok(answeredWhilePaused < REQUESTS, `the server stopped before reading everything (${answeredWhilePaused} of ${REQUESTS} answered)`);

      // Meanwhile another client is served normally, over WebSocket and HTTP.
      const other = await WsClient.connect(rt.wsUrl);
      try {
        for (let i = 0; i < 5; i++) {
          const a = await other.infer('vad', vadInputs(100 + i));
          assert.equal(a.ok, true, JSON.stringify(a.body));
        }
      } finally {
        await other.close();
      }
      assert.equal((await httpInfer(rt.baseUrl, 'vad', vadInputs(200))).status, 200);

      // The slow connection was not read meanwhile: only the other client's 6 requests were added.
      const s = statsOf(localPort);
      assert.equal(s.paused, true, 'still paused');
      assert.equal((await successes()) - startCount, answeredWhilePaused + 6, 'no request of the slow client was read while it did not read');

      // Bounded: at most maxInflight in flight, and at most UNREAD_PAUSE_BYTES buffered before the
      // pause plus the answers that were already in flight when it paused (far under maxBuffered).
      assert.ok(s.peakInflight <= MAX_INFLIGHT, `peak in-flight ${s.peakInflight} <= ${MAX_INFLIGHT}`);
      const bound = UNREAD_PAUSE_BYTES + MAX_INFLIGHT * ANSWER_MAX;
      assert.ok(bound < MAX_BUFFERED);
      assert.ok(s.peakBufferedAmount <= bound, `peak buffered ${s.peakBufferedAmount} <= ${bound}`);
      assert.ok(s.bufferedAmount > UNREAD_PAUSE_BYTES, `paused because the client does not read (buffered ${s.bufferedAmount})`);
      t.diagnostic(`answered before the pause held: ${answeredWhilePaused}/${REQUESTS}; peak in-flight ${s.peakInflight}; peak buffered ${s.peakBufferedAmount} B; buffered now ${s.bufferedAmount} B`);

      // The client reads again: every answer arrives, exactly once, and the server resumes.
      socket.resume();
      await waitFor(() => answers.size === REQUESTS, 60_000, `all ${REQUESTS} answers`);
      assert.ok(answerBytes <= ANSWER_MAX, `answers are at most ${ANSWER_MAX} bytes (largest: ${answerBytes})`);
      assert.equal(bad, null, `every answer is a full result: ${JSON.stringify(bad)?.slice(0, 300)}`);
      for (let i = 0; i < REQUESTS; i++) assert.equal(answers.get(`q${i}`), 1, `one answer to q${i}`);
      await waitFor(() => {
        const x = statsOf(localPort);
        return !x.paused && x.inflight === 0;
      }, 10_000, 'the connection to resume');
      assert.ok(statsOf(localPort).peakInflight <= MAX_INFLIGHT, `peak in-flight ${statsOf(localPort).peakInflight} <= ${MAX_INFLIGHT}`);
      assert.equal((await successes()) - startCount, REQUESTS + 6);
    } finally {
      socket.resume();
      await new Promise<void>((resolve) => {
        if (slow.readyState === WebSocket.CLOSED) return resolve();
        slow.once('close', () => resolve());
        slow.close();
      });
    }
  });
});
