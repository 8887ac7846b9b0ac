// The WebSocket `emit` op and the runtime's own events, end to end through the real store.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { waitFor, WsClient } from '../helpers/clients.js';
import { clsInput } from '../helpers/models.js';
import { MODEL_FILES } from '../helpers/paths.js';
import { storedEvents } from '../helpers/outbox-events.js';
import { TempRepository } from '../helpers/repository.js';
import { startRuntime } from '../helpers/runtime.js';

describe('emit and runtime events', () => {
  test('emit answers once durable, with a seq that rises by one; subscribers hear it; status counts it', async () => {
    const repo = new TempRepository({ cls: { versions: { 1: MODEL_FILES.ocrCls } } });
    const rt = await startRuntime(repo.dir);
    const ws = await WsClient.connect(rt.wsUrl);
    const listener = await WsClient.connect(rt.wsUrl);
    try {
      assert.ok((await listener.request({ op: 'subscribe', topics: ['events'] })).ok);
      const answers = await Promise.all(Array.from({ length: 20 }, (_, i) => ws.request({ op: 'emit', type: 'door', payload: { n: i } })));
      const seqs = answers.map((a) => a.body.seq as number).sort((a, b) => a - b);
      for (const a of answers) assert.ok(a.ok && typeof a.body.eventId === 'string', JSON.stringify(a.body));
      for (let i = 1; i < seqs.length; i++) assert.equal(seqs[i], (seqs[i - 1] as number) + 1);
      // Durable means: in the database now, before anyone else looks.
      const doors = await storedEvents(rt.runtime.store.outbox, 'door');
      assert.deepEqual(doors.map((e) => e.seq), seqs);
      await waitFor(() => listener.notifications.filter((n) => n.topic === 'events' && (n.data as { type: string }).type === 'door').length === 20);
      const status = await ws.request({ op: 'status' });
      const s = status.body.status as { outbox: { count: number }; models: unknown[]; connectivity: string };
      // 20 emits + the runtime's own model.ready event.
      assert.equal(s.outbox.count, 21);
      assert.equal(s.connectivity, 'disabled');
      assert.deepEqual(s.models, [{ name: 'cls', version: 1, ready: true }]);
      const own = await storedEvents(rt.runtime.store.outbox, 'model.ready');
      assert.equal(own.length, 1);
      assert.equal((own[0]?.payload as { name: string }).name, 'cls');
    } finally {
      await ws.close();
      await listener.close();
      await rt.stop();
      repo.remove();
    }
  });

  test('a store that cannot write: emit gets PERCH_ERR_STORE_READONLY, inference keeps serving', async () => {
    const repo = new TempRepository({ cls: { versions: { 1: MODEL_FILES.ocrCls } } });
    // A data directory not even root may create (under /sys): the store opens degraded, read-only.
    // A store that turns read-only while running is test/store/degraded.test.ts's (SQLite level).
    const rt = await startRuntime(repo.dir, { dataDir: join('/sys', `perch-test-${process.pid}`, 'data') });
    const ws = await WsClient.connect(rt.wsUrl);
    try {
      assert.equal(rt.runtime.store.writable, false);
      const emit = await ws.request({ op: 'emit', type: 'x', payload: 1 });
      assert.equal(emit.ok, false);
      assert.equal((emit.body.error as { code: string }).code, 'PERCH_ERR_STORE_READONLY');
      const inf = await ws.infer('cls', clsInput(1));
      assert.ok(inf.ok, JSON.stringify(inf.body));
    } finally {
      await ws.close();
      await rt.stop();
      repo.remove();
    }
  });

  test('a corrupt database file is moved aside, a fresh one serves, and the incident is an event', async () => {
    const repo = new TempRepository({ cls: { versions: { 1: MODEL_FILES.ocrCls } } });
    const dataDir = mkdtempSync(join(tmpdir(), 'perch-data-'));
    writeFileSync(join(dataDir, 'perch.db'), Buffer.alloc(8192, 0x5a));
    const rt = await startRuntime(repo.dir, { dataDir });
    const ws = await WsClient.connect(rt.wsUrl);
    try {
      const emit = await ws.request({ op: 'emit', type: 'after', payload: {} });
      assert.ok(emit.ok, JSON.stringify(emit.body));
      await waitFor(async () => (await storedEvents(rt.runtime.store.outbox, 'store.corrupt')).length === 1);
    } finally {
      await ws.close();
      await rt.stop();
      repo.remove();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
