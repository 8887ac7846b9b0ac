// Server-Sent Events at /v1/events over real HTTP connections: resume with Last-Event-ID after a
// disconnect while events keep coming (every event exactly once), heartbeats, the other topics,
// auth by query token, and a reader that does not read is cut off and its bytes given back.
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { describe, test } from 'node:test';
import { waitFor, WsClient } from '../helpers/clients.js';
import { MODEL_FILES } from '../helpers/paths.js';
import { TempRepository } from '../helpers/repository.js';
import { startRuntime } from '../helpers/runtime.js';
import { SseReader } from '../helpers/sse.js';

describe('SSE /v1/events', () => {
  test('disconnect mid-stream while events are emitted; Last-Event-ID resumes with every event exactly once', async () => {
    const repo = new TempRepository({ cls: { versions: { 1: MODEL_FILES.ocrCls } } });
    const rt = await startRuntime(repo.dir, { server: { eventStreamHeartbeatMs: 50 } });
    const ws = await WsClient.connect(rt.wsUrl);
    const start = rt.runtime.store.outbox.stats().lastSeq;
    const readers: SseReader[] = [];
    try {
      const first = await SseReader.open(`${rt.baseUrl}/v1/events?topics=events,models`);
      readers.push(first);
      assert.equal(first.status, 200);
      assert.match(String(first.headers['content-type']), /^text\/event-stream/);
      // An emitter that keeps going while the reader goes away and comes back.
      const total = 120;
      let acked = 0;
      const emitting = (async () => {
        for (let i = 0; i < total; i++) {
          const a = await ws.request({ op: 'emit', type: 'door', payload: { i } });
          assert.ok(a.ok, JSON.stringify(a.body));
          acked++;
        }
      })();
      await waitFor(() => first.outboxEvents().length >= 20, 20_000, 'first reader sees 20 events');
      first.close();
      const seen = first.outboxEvents();
      const lastId = first.lastId();
      assert.equal(lastId, String(seen[seen.length - 1]?.seq));
      assert.ok(acked < total, 'the reconnect happens while events are still being emitted');
      // The reconnect carries the id as EventSource does (header); events emitted meanwhile come from the outbox.
      const second = await SseReader.open(`${rt.baseUrl}/v1/events?topics=events`, { 'last-event-id': lastId as string });
      readers.push(second);
      await emitting;
      const finalSeq = rt.runtime.store.outbox.stats().lastSeq;
      await waitFor(() => second.outboxEvents().some((e) => e.seq === finalSeq), 20_000, 'second reader reaches the last seq');
      const seqs = [...seen, ...second.outboxEvents()].map((e) => e.seq);
      const expected = Array.from({ length: finalSeq - start }, (_, i) => start + 1 + i);
      assert.deepEqual(seqs, expected, 'every event once, in order, across the disconnect');
      for (const e of second.outboxEvents()) assert.equal(e.id, String(e.seq));
      const doors = [...seen, ...second.outboxEvents()].filter((e) => e.type === 'door').map((e) => (e.payload as { i: number }).i);
      assert.deepEqual(doors, Array.from({ length: total }, (_, i) => i));
      // Heartbeats: comment lines at the configured interval.
      const c = second.comments;
      await waitFor(() => second.comments >= c + 2, 10_000, 'heartbeat comments');
      // lastEventId as a query parameter (a page started again) replays from the store alone.
      const third = await SseReader.open(`${rt.baseUrl}/v1/events?topics=events&lastEventId=${finalSeq - 5}`);
      readers.push(third);
      await waitFor(() => third.outboxEvents().length >= 5);
      assert.deepEqual(third.outboxEvents().map((e) => e.seq), [finalSeq - 4, finalSeq - 3, finalSeq - 2, finalSeq - 1, finalSeq]);
    } finally {
      for (const r of readers) r.close();
      await ws.close();
      await rt.stop();
      repo.remove();
    }
  });

  test('models and metrics topics; token by query parameter; bad topics and ids are 400', async () => {
    const repo = new TempRepository({ cls: { versions: { 1: MODEL_FILES.ocrCls } } });
    const token = 'sse-test-token-123';
    const rt = await startRuntime(repo.dir, { server: { apiToken: token } });
    const readers: SseReader[] = [];
    try {
      const refused = await SseReader.open(`${rt.baseUrl}/v1/events`);
      await waitFor(() => refused.ended);
      assert.equal(refused.status, 401);
      assert.equal((JSON.parse(refused.body) as { code: string }).code, 'PERCH_ERR_UNAUTHORIZED');
      for (const q of ['topics=nope', 'lastEventId=abc']) {
        const bad = await SseReader.open(`${rt.baseUrl}/v1/events?${q}&token=${token}`);
        await waitFor(() => bad.ended);
        assert.equal(bad.status, 400, q);
        assert.equal((JSON.parse(bad.body) as { code: string }).code, 'PERCH_ERR_INVALID_MESSAGE');
      }
      const r = await SseReader.open(`${rt.baseUrl}/v1/events?topics=models,metrics&token=${token}`);
      readers.push(r);
      assert.equal(r.status, 200);
      await rt.runtime.registry.unload('cls');
      await waitFor(() => r.events.some((e) => e.event === 'models' && (JSON.parse(e.data) as { state: string }).state === 'unloaded'));
      const m = await waitFor(() => r.events.find((e) => e.event === 'metrics'), 10_000, 'a metrics sample');
      const sample = JSON.parse(m.data) as { itemsPerSec: number; outbox: { count: number }; connectivity: string };
      assert.equal(typeof sample.itemsPerSec, 'number');
      assert.equal(sample.connectivity, 'disabled');
      assert.ok(sample.outbox.count >= 1);
    } finally {
      for (const r of readers) r.close();
      await rt.stop();
      repo.remove();
    }
  });

  test('a reader that does not read is cut off and every byte it held given back; others go on', async () => {
    const repo = new TempRepository();
    const rt = await startRuntime(repo.dir, { server: { maxBufferedBytesPerConnection: 64 * 1024, slowReaderTimeoutMs: 200 } });
    const ws = await WsClient.connect(rt.wsUrl);
    const reader = await SseReader.open(`${rt.baseUrl}/v1/events?topics=events`);
    // A client that sends its request and never reads a byte.
    const port = Number(new URL(rt.baseUrl).port);
    const stuck = connect(port, '127.0.0.1');
    stuck.on('error', () => undefined);
    let stuckClosed = false;
    stuck.once('close', () => (stuckClosed = true));
    try {
      stuck.write('GET /v1/events?topics=events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
      stuck.pause();
      await waitFor(() => rt.runtime.eventStreams.count === 2, 10_000, 'both streams open');
      const blob = 'x'.repeat(60 * 1024);
      let emitted = 0;
      // Emit until the stuck stream is cut: the kernel's socket buffers take some megabytes first.
      await waitFor(async () => {
        if (rt.runtime.eventStreams.count === 1) return true;
        await Promise.all(Array.from({ length: 8 }, () => ws.request({ op: 'emit', type: 'blob', payload: blob })));
        emitted += 8;
        assert.ok(emitted < 4000, 'the stuck stream was never cut off');
        return false;
      }, 60_000, 'the stuck reader is cut off');
      // Reading now drains what the kernel held and finds the connection ended.
      stuck.resume();
      await waitFor(() => stuckClosed, 10_000, 'the stuck socket is closed');
      // The reader that reads got every blob; nothing is held for the stuck one.
      await waitFor(() => reader.outboxEvents().length === emitted, 20_000, () => `reader has ${reader.outboxEvents().length} of ${emitted}`);
      await waitFor(() => rt.runtime.clientBudget.heldBytes < 64 * 1024, 10_000, () => `budget still holds ${rt.runtime.clientBudget.heldBytes}`);
      reader.close();
      await waitFor(() => rt.runtime.eventStreams.count === 0 && rt.runtime.clientBudget.heldBytes === 0, 10_000, () => `held ${rt.runtime.clientBudget.heldBytes}`);
    } finally {
      stuck.destroy();
      reader.close();
      await ws.close();
      await rt.stop();
      repo.remove();
    }
  });

  test('readers each under their own limit that together hold the budget are cut off once nothing more is written', async () => {
    // Red-team pass: 200 never-reading subscribers of a few hundred KB each held the whole client
    // budget for good (every HTTP body 429), none cut off: a stream was only checked when its own
    // write took it over, and once over, nothing is written to it.
    const repo = new TempRepository();
    const rt = await startRuntime(repo.dir, { server: { maxClientBytes: 1024 * 1024, slowReaderTimeoutMs: 200, eventStreamHeartbeatMs: 50 } });
    const budget = rt.runtime.clientBudget;
    const ws = await WsClient.connect(rt.wsUrl);
    const port = Number(new URL(rt.baseUrl).port);
    const stuck = Array.from({ length: 4 }, () => {
      const s = connect(port, '127.0.0.1');
      s.on('error', () => undefined);
      s.write('GET /v1/events?topics=events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
      s.pause();
      return s;
    });
    try {
      await waitFor(() => rt.runtime.eventStreams.count === stuck.length, 10_000, 'the streams are open');
      const blob = 'x'.repeat(60 * 1024);
      let emitted = 0;
      // Emit until the readers' unread answers fill the budget or one is cut off (the kernel's
      // buffers take some megabytes first).
      await waitFor(async () => {
        if (budget.heldBytes >= budget.limit * 0.75 || rt.runtime.eventStreams.count < stuck.length) return true;
        await Promise.all(Array.from({ length: 4 }, () => ws.request({ op: 'emit', type: 'blob', payload: blob })));
        emitted += 4;
        assert.ok(emitted < 4000, 'the streams never held the budget');
        return false;
      }, 60_000, 'the never-reading streams hold the budget');
      // Nothing more is emitted: only their heartbeats find them over. They are cut until their
      // unread answers are back within a quarter of the budget (client-budget.ts UNREAD_SHARE).
      await waitFor(() => budget.heldBytes <= budget.unreadLimit + rt.runtime.eventStreams.count * 64 * 1024, 10_000, () => `${rt.runtime.eventStreams.count} streams hold ${budget.heldBytes} of ${budget.limit}`);
      assert.ok(rt.runtime.eventStreams.count < stuck.length, 'some stream was cut off');
      // Another client is served with room to spare.
      const res = await fetch(`${rt.baseUrl}/v1/status`);
      assert.equal(res.status, 200);
      for (const s of stuck) s.destroy();
      await waitFor(() => rt.runtime.eventStreams.count === 0 && budget.heldBytes === 0, 10_000, () => `held ${budget.heldBytes}`);
    } finally {
      for (const s of stuck) s.destroy();
      await ws.close();
      await rt.stop();
      repo.remove();
    }
  });
});
