// A full outbox (strategy refuse) and a SIGKILL: `perch serve` as a real process takes emits
// over WebSocket until it refuses them, is killed while more are in flight, and starts again on
// the same data directory. Every acknowledged event is there, and the restarted process still
// refuses (what may be dropped is read back from the file, docs/store.md "Retention").
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { openStore } from '../../runtime/store/store.js';
import { WsClient } from '../helpers/clients.js';
import { servePerch } from '../helpers/perch-process.js';
import { TempRepository } from '../helpers/repository.js';
import type { Child } from '../helpers/wire.js';

const children: Child[] = [];
after(async () => {
  for (const c of children) await c.kill();
});

test('SIGKILL with a full outbox: no acknowledged event is lost, and refusals go on after the restart', async () => {
  const repo = new TempRepository();
  const dataDir = mkdtempSync(join(tmpdir(), 'perch-full-kill-'));
  const config = join(dataDir, 'perch.json');
  writeFileSync(config, JSON.stringify({
    device: { id: 'full-kill' },
    dataDir,
    models: { repository: repo.dir },
    server: { host: '127.0.0.1', port: 0 },
    log: { level: 'info' },
    store: { outbox: { maxBytes: 16_384, maxEventBytes: 1024, overflowByType: { 'telemetry.*': 'drop-oldest' } } },
  }));
  try {
    const first = await servePerch(config, children);
    const ws = await WsClient.connect(`ws://127.0.0.1:${first.port}/v1/ws`);
    const acked = new Map<number, string>(); // seq -> type
    let refused = 0;
    // Waves of 16 concurrent emits, alarms and telemetry mixed, until refusals come back; the
    // process is killed with the last wave still in flight.
    const wave = (n: number) =>
      Array.from({ length: 16 }, (_, i) =>
        ws.request({ op: 'emit', type: i % 4 === 0 ? 'telemetry.temp' : 'alarm', payload: { n, i, pad: 'x'.repeat(300) } }).then(
          (a) => {
            if (a.ok) acked.set(a.body.seq as number, i % 4 === 0 ? 'telemetry.temp' : 'alarm');
            else if ((a.body.error as { code: string }).code === 'PERCH_ERR_STORE_FULL') refused++;
          },
          () => undefined, // the connection died with the process: not acknowledged
        ),
      );
    for (let n = 0; refused === 0; n++) {
      assert.ok(n < 200, 'no refusal after 200 waves');
      await Promise.all(wave(n));
    }
    void wave(-1); // answers that come before the kill count as acknowledged; the rest never come
    await first.child.kill();
    await ws.close().catch(() => undefined);
    assert.ok(acked.size > 30, `${acked.size} acknowledged`);

    const second = await servePerch(config, children);
    const ws2 = await WsClient.connect(`ws://127.0.0.1:${second.port}/v1/ws`);
    const again = await ws2.request({ op: 'emit', type: 'alarm', payload: { pad: 'x'.repeat(300) } });
    assert.equal((again.body.error as { code?: string } | undefined)?.code, 'PERCH_ERR_STORE_FULL', JSON.stringify(again.body));
    await ws2.close();
    await second.child.kill();

    const store = openStore({ dataDir, readOnly: true });
    try {
      const stored = new Set((await store.outbox.claim(1e6)).map((e) => e.seq));
      // An acknowledged telemetry event may have been dropped to make room; an alarm never.
      const ackedAlarms = [...acked].filter(([, type]) => type === 'alarm').map(([seq]) => seq);
      assert.ok(ackedAlarms.length > 20, `${ackedAlarms.length} alarms acknowledged`);
      const lost = ackedAlarms.filter((seq) => !stored.has(seq));
      assert.deepEqual(lost, [], 'acknowledged alarms lost');
      assert.ok(store.outbox.stats().bytes <= 16_384);
    } finally {
      await store.close();
    }
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
    repo.remove();
  }
});
