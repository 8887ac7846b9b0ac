// `perch fleet serve` against a real Mosquitto: chunk requests answered byte-exactly from the
// fleet store and bad ones ignored; events through the shared subscription split between two
// serve processes and deduplicated on (deviceId, seq); `events` and `devices` reading the result.
import assert from 'node:assert/strict';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import type { MqttClient } from 'mqtt';
import { pino } from 'pino';
import { DB_FILE, SqliteFleetStore } from '../../cloud-sync/fleet/store/sqlite-store.js';
import { eventsCommand } from '../../cloud-sync/fleet/commands/events.js';
import { fleetOptions } from '../../cloud-sync/fleet/cli/options.js';
import { startServe, type RunningServe } from '../../cloud-sync/fleet/serve/daemon.js';
import { topics } from '../../cloud-sync/protocol/topics.js';
import { waitFor } from '../helpers/clients.js';
import { startMosquitto, type Mosquitto } from '../helpers/mosquitto.js';
import type { Child } from '../helpers/wire.js';
import { announceDevice, fleet, mqttClient, PREFIX, spawnFleet, TempDirs } from './harness.js';

class Lines extends Writable {
  lines: Array<Record<string, unknown>> = [];
  text = '';
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: () => void): void {
    this.text += chunk.toString();
    for (const l of chunk.toString().split('\n')) if (l.startsWith('{')) this.lines.push(JSON.parse(l) as Record<string, unknown>);
    cb();
  }
}

function eventBatch(deviceId: string, firstSeq: number, n: number): string {
  const events = Array.from({ length: n }, (_, i) => ({ id: randomUUID(), seq: firstSeq + i, ts: Date.now(), type: 'vad.segment', payload: { i: firstSeq + i } }));
  return JSON.stringify({ deviceId, events });
}

describe('fleet serve', () => {
  const temp = new TempDirs();
  const children: Child[] = [];
  const clients: MqttClient[] = [];
  let broker: Mosquitto;
  let running: RunningServe | undefined;
  // Every serve a test started is stopped here too: a test that fails before its own stop()
  // left its serve reconnecting to the closed broker for good, and the file never ended.
  const allServes: RunningServe[] = [];
  const startedServe = async (...args: Parameters<typeof startServe>): Promise<RunningServe> => {
    const s = await startServe(...args);
    allServes.push(s);
    return s;
  };

  before(async () => {
    broker = await startMosquitto();
  });
  after(async () => {
    for (const s of allServes) await s.stop();
    for (const c of children) await c.kill();
    for (const c of clients) await c.endAsync(true).catch(() => undefined);
    await broker?.close();
    temp.cleanup();
  });

  const device = async (id: string): Promise<MqttClient> => {
    const c = await mqttClient(broker.url, { clientId: id });
    clients.push(c);
    await announceDevice(c, id);
    return c;
  };

  test('answers chunk requests byte-exactly from the store; bad requests are logged, counted, ignored', async () => {
    const store = temp.make();
    const dev = await device('pi-1');
    const model = join(temp.make(), 'm.onnx');
    const bytes = randomBytes(100_003);
    writeFileSync(model, bytes);
    const pushed = await fleet(['push', '--url', broker.url, '--store', store, '--device', 'pi-1', '--model', 'vad', '--version', '2', '--file', model, '--chunk-size', '8192']);
    assert.equal(pushed.code, 0, pushed.stderr);

    const logOut = new Lines();
    running = await startedServe({ fleet: fleetOptions({ url: broker.url, store }, {}), log: pino({ level: 'info' }, logOut), maxPayloadBytes: 4096, maxChunksPerRequest: 5 });

    const t = topics(PREFIX, 'pi-1');
    const chunks = new Map<number, Buffer>();
    dev.on('message', (topic, payload) => {
      const m = /\/chunks\/(\d+)$/.exec(topic);
      if (m) chunks.set(Number(m[1]), payload);
    });
    await dev.subscribeAsync(t.chunks('vad', 2), { qos: 1 });
    const ask = (body: unknown): Promise<unknown> => dev.publishAsync(t.modelsRequest, typeof body === 'string' ? body : JSON.stringify(body), { qos: 1 });

    // Bad ones first: none may stop the good ones after them.
    await ask('not json {');
    await ask({ name: 'vad', version: 2, from: -1, count: 1 });
    await ask({ name: 'nope', version: 1, from: 0, count: 1 });
    await ask({ name: 'vad', version: 9, from: 0, count: 1 });
    await ask({ name: 'vad', version: 2, from: 13, count: 1 }); // 13 chunks: 0..12
    await ask(JSON.stringify({ name: 'vad', version: 2, from: 0, count: 1, pad: 'x'.repeat(5000) }));
    // 13 chunks, at most 5 per request (a window), the last window cut at the end.
    for (const from of [0, 5, 10]) await ask({ name: 'vad', version: 2, from, count: 8 });

    await waitFor(() => chunks.size === 13, 10_000, 'all 13 chunks');
    const whole = Buffer.concat([...chunks.keys()].sort((a, b) => a - b).map((i) => chunks.get(i) as Buffer));
    assert.equal(createHash('sha256').update(whole).digest('hex'), createHash('sha256').update(bytes).digest('hex'));
    assert.equal(chunks.get(12)?.length, 100_003 - 12 * 8192);
    await waitFor(() => running?.stats.chunksSent === 13, 5000, 'chunk stats');
    assert.deepEqual(running.stats.ignored, { json: 1, schema: 1, 'not-desired': 2, 'out-of-range': 1, oversized: 1 });

    // Confinement: another device asking, on its own topic, for the model pushed to pi-1 gets
    // nothing (the request is refused before any file is read, so no chunk can follow).
    const other = await device('pi-other');
    const stolen: string[] = [];
    other.on('message', (topic) => stolen.push(topic));
    await other.subscribeAsync(topics(PREFIX, 'pi-other').allChunks, { qos: 1 });
    await other.publishAsync(topics(PREFIX, 'pi-other').modelsRequest, JSON.stringify({ name: 'vad', version: 2, from: 0, count: 13 }), { qos: 1 });
    await waitFor(() => running?.stats.ignored['not-desired'] === 3, 5000, 'the other device refused');
    assert.deepEqual(stolen, []);
    assert.equal(running.stats.chunksSent, 13);
    // At most one line per reason and device a second (ignored-log.ts): pi-1's two not-desired
    // requests may share one; every reason has its line.
    const ignored = logOut.lines.filter((l) => l.msg === 'chunk request ignored');
    assert.ok(ignored.length >= 6 && ignored.length <= 7, JSON.stringify(ignored));
    assert.deepEqual(new Set(ignored.map((l) => l.reason)), new Set(['json', 'schema', 'not-desired', 'out-of-range', 'oversized']));
    assert.ok(ignored.some((l) => l.deviceId === 'pi-other' && l.reason === 'not-desired'));
    assert.ok(ignored.every((l) => typeof l.code === 'string' && String(l.code).startsWith('PERCH_ERR_')), JSON.stringify(ignored));
    await running.stop();
    running = undefined;
  });

  test('two serve processes split events through the shared subscription; duplicates are stored once', async () => {
    const store = temp.make();
    const serves = [1, 2].map((i) => {
      const c = spawnFleet(['serve', '--url', broker.url, '--store', store, '--progress-ms', '0', '--client-id', `fleet-serve-${i}`]);
      children.push(c);
      return c;
    });
    for (const s of serves) {
      await waitFor(() => !s.running || s.logLines().some((l) => l.msg === 'fleet serve ready'), 60_000, 'serve ready');
      assert.ok(s.running, s.stderr + s.stdout);
    }
    const dev = await device('pi-2');
    const t = topics(PREFIX, 'pi-2');
    // The device's side of the contract: every stored batch is acked on its events/ack topic.
    const acked = new Set<number>();
    dev.on('message', (topic, payload) => {
      if (topic !== t.eventsAck) return;
      for (const [a, b] of (JSON.parse(payload.toString()) as { ranges: [number, number][] }).ranges) for (let s = a; s <= b; s++) acked.add(s);
    });
    await dev.subscribeAsync(t.eventsAck, { qos: 1 });
    // 100 batches of 10 events; then 20 of them again (an at-least-once redelivery), then junk.
    for (let b = 0; b < 100; b++) await dev.publishAsync(t.events, eventBatch('pi-2', b * 10 + 1, 10), { qos: 1 });
    for (let b = 40; b < 60; b++) await dev.publishAsync(t.events, eventBatch('pi-2', b * 10 + 1, 10), { qos: 1 });
    await dev.publishAsync(t.events, 'garbage', { qos: 1 });
    await dev.publishAsync(t.events, eventBatch('someone-else', 1, 1), { qos: 1 });

    const sum = (key: 'stored' | 'duplicates'): number =>
      serves.flatMap((s) => s.logLines()).filter((l) => l.msg === 'events').reduce((n, l) => n + Number(l[key]), 0);
    await waitFor(() => sum('stored') + sum('duplicates') === 1200, 15_000, 'all 120 batches handled');
    assert.equal(sum('stored'), 1000);
    assert.equal(sum('duplicates'), 200);
    for (const s of serves) {
      const batches = s.logLines().filter((l) => l.msg === 'events').length;
      assert.ok(batches > 0 && batches < 120, `each serve took part of the load, this one ${batches} of 120`);
    }
    await waitFor(() => serves.flatMap((s) => s.logLines()).filter((l) => l.msg === 'payload ignored').length === 2, 5000, 'the 2 bad batches logged');
    await waitFor(() => acked.size === 1000, 5000, 'all 1000 seqs acked');
    assert.equal(Math.max(...acked), 1000, 'only stored seqs are acked (not the other device id in a payload)');

    const db = new SqliteFleetStore(join(store, DB_FILE));
    const stored = await db.events('pi-2', 0, 5000);
    await db.close();
    assert.deepEqual(stored.map((e) => e.seq), Array.from({ length: 1000 }, (_, i) => i + 1));

    // events: ordered JSON lines after --since.
    const ev = await fleet(['events', '--store', store, '--device', 'pi-2', '--since', '995']);
    assert.equal(ev.code, 0, ev.stderr);
    assert.deepEqual(ev.stdout.trim().split('\n').map((l) => (JSON.parse(l) as { seq: number }).seq), [996, 997, 998, 999, 1000]);
    assert.match((await fleet(['events', '--store', store, '--device', 'ghost'])).stderr, /PERCH_ERR_DEVICE_UNKNOWN/);

    // events --follow prints what serve stores next.
    const out = new Lines();
    const ac = new AbortController();
    const following = eventsCommand(['--store', store, '--device', 'pi-2', '--since', '1000', '--follow', '--poll-ms', '20'], out, ac.signal);
    await dev.publishAsync(t.events, eventBatch('pi-2', 1001, 3), { qos: 1 });
    await waitFor(() => out.lines.length === 3, 10_000, 'followed events');
    ac.abort();
    assert.equal(await following, 0);
    assert.deepEqual(out.lines.map((l) => l.seq), [1001, 1002, 1003]);

    // devices: pi-2 online, with its events counted from the fleet database.
    const d = await fleet(['devices', '--url', broker.url, '--store', store, '--json']);
    assert.equal(d.code, 0, d.stderr);
    const pi2 = (JSON.parse(d.stdout) as Array<Record<string, unknown>>).find((x) => x.deviceId === 'pi-2');
    assert.deepEqual(
      { online: pi2?.online, eventsStored: pi2?.eventsStored, lastSeq: pi2?.lastSeq, contiguousSeq: pi2?.contiguousSeq, missing: pi2?.missing },
      { online: true, eventsStored: 1003, lastSeq: 1003, contiguousSeq: 1003, missing: 0 },
    );

    for (const s of serves) {
      s.proc.kill('SIGTERM');
      assert.equal((await s.exited).code, 0, s.stderr);
    }
  });

  test('group commit over several ingest connections: every batch stored once, each ack only for what is committed', async () => {
    const store = temp.make();
    running = await startedServe({ fleet: fleetOptions({ url: broker.url, store }, {}), log: pino({ level: 'silent' }), group: 'grouped', ingestConnections: 4 });
    const reader = new SqliteFleetStore(join(store, DB_FILE), { readOnly: true });
    const ids = Array.from({ length: 8 }, (_, i) => `pi-g${i}`);
    const devices = await Promise.all(ids.map((id) => device(id)));
    const acked = new Map<string, Set<number>>(ids.map((id) => [id, new Set()]));
    const notHeld: string[] = [];
    devices.forEach((dev, i) => {
      const id = ids[i] as string;
      dev.on('message', (topic, payload) => {
        if (topic !== topics(PREFIX, id).eventsAck) return;
        const seqs: number[] = [];
        for (const [a, b] of (JSON.parse(payload.toString()) as { ranges: [number, number][] }).ranges) for (let s = a; s <= b; s++) seqs.push(s);
        // An ack the device receives must name only what the fleet store already holds.
        void reader.events(id, 0, 10_000).then((held) => {
          const have = new Set(held.map((e) => e.seq));
          for (const s of seqs) {
            if (!have.has(s)) notHeld.push(`${id}:${s}`);
            acked.get(id)?.add(s);
          }
        });
      });
    });
    await Promise.all(devices.map((d, i) => d.subscribeAsync(topics(PREFIX, ids[i] as string).eventsAck, { qos: 1 })));
    // 25 batches of 4 from each device at once (and 5 of them again), all in flight together.
    await Promise.all(devices.flatMap((dev, i) => {
      const id = ids[i] as string;
      const t = topics(PREFIX, id);
      return [...Array.from({ length: 25 }, (_, b) => b), 3, 7, 11, 15, 19].map((b) => dev.publishAsync(t.events, eventBatch(id, b * 4 + 1, 4), { qos: 1 }));
    }));
    await waitFor(() => [...acked.values()].every((a) => a.size === 100) && running?.stats.batches === 240, 30_000, 'every seq acked');
    await running.stop();
    for (const dev of devices) dev.removeAllListeners('message');
    assert.deepEqual(notHeld, []);
    for (const id of ids) assert.deepEqual((await reader.events(id, 0, 1000)).map((e) => e.seq), Array.from({ length: 100 }, (_, i) => i + 1));
    const st = running.stats;
    assert.equal(st.eventsStored, 800);
    assert.equal(st.duplicates, 160);
    // Every write went through a group commit (status and reported state included).
    assert.equal(st.groupedWrites, st.batches + st.statusUpdates + st.reportedUpdates);
    assert.ok(st.commits <= st.groupedWrites && st.largestGroup <= 4, `groups bounded by the 4 connections (${st.largestGroup})`);
    await reader.close();
    running = undefined;
  });

  test('devices shows a device once it published status and reported state', async () => {
    const dev = await mqttClient(broker.url, { clientId: 'pi-3' });
    clients.push(dev);
    const store = temp.make();
    const before = await fleet(['devices', '--url', broker.url, '--store', store, '--json']);
    assert.ok(!(JSON.parse(before.stdout) as Array<{ deviceId: string }>).some((x) => x.deviceId === 'pi-3'));
    await announceDevice(dev, 'pi-3', {
      desiredVersion: 4,
      models: {
        vad: { version: 2, sha256: 'a'.repeat(64), status: 'active' },
        ocr: { version: 3, sha256: 'c'.repeat(64), status: 'failed', error: { code: 'PERCH_ERR_MODEL_LOAD_FAILED', message: 'no' } },
        old: { version: 1, sha256: 'd'.repeat(64), status: 'active' },
      },
      configError: { code: 'PERCH_ERR_LIVE_CONFIG_INVALID', message: 'live config refused' },
      outbox: { count: 17 },
      labels: { site: 'lab', hw: 'pi4' },
    });
    const spec = (version: number, c: string): Record<string, unknown> => ({ version, sha256: c.repeat(64), size: 1, chunkSize: 1 });
    // old: removal asked, still reported; gone: removed and no longer reported.
    await dev.publishAsync(topics(PREFIX, 'pi-3').desired, JSON.stringify({ version: 5, models: { vad: spec(3, 'b'), ocr: spec(3, 'c'), old: null, gone: null }, config: {} }), { qos: 1, retain: true });
    const table = await fleet(['devices', '--url', broker.url, '--store', store]);
    assert.equal(table.code, 0, table.stderr);
    const row = table.stdout.split('\n').find((l) => l.startsWith('pi-3'));
    assert.ok(row, table.stdout);
    assert.match(row, /^pi-3\s+yes\s+hw=pi4,site=lab\s+5\s+4\s+ocr v3 failed PERCH_ERR_MODEL_LOAD_FAILED, old v1 active -> removed, vad v2 active -> v3\s+refused PERCH_ERR_LIVE_CONFIG_INVALID\s+17\s+0\s+-\s+-$/);
    assert.match(table.stdout.split('\n')[0] ?? '', /^DEVICE\s+ONLINE\s+LABELS\s+DESIRED\s+REPORTED\s+MODELS\s+CONFIG\s+BACKLOG\s+EVENTS\s+HELD\s+GAPS$/);
    const json = (JSON.parse((await fleet(['devices', '--url', broker.url, '--store', store, '--json'])).stdout) as Array<Record<string, unknown>>).find((x) => x.deviceId === 'pi-3');
    assert.deepEqual(json?.configError, { code: 'PERCH_ERR_LIVE_CONFIG_INVALID', message: 'live config refused' });
    assert.deepEqual(json?.labels, { site: 'lab', hw: 'pi4' });
    assert.deepEqual((json?.models as Array<{ name: string }>).map((m) => m.name), ['ocr', 'old', 'vad'], 'a removed model the device no longer reports is not listed');

    // Once the device reports the removal done and the config applied, both leave the table.
    await announceDevice(dev, 'pi-3', { desiredVersion: 5, models: { vad: { version: 3, sha256: 'b'.repeat(64), status: 'active' }, ocr: { version: 3, sha256: 'c'.repeat(64), status: 'active' } }, outbox: { count: 0 } });
    const after = (await fleet(['devices', '--url', broker.url, '--store', store])).stdout.split('\n').find((l) => l.startsWith('pi-3'));
    assert.match(after ?? '', /^pi-3\s+yes\s+-\s+5\s+5\s+ocr v3 active, vad v3 active\s+ok\s+0\s+0\s+-\s+-$/);
  });

  test('devices shows the highest contiguous seq held and the gaps the fleet knows of', async () => {
    const store = temp.make();
    running = await startedServe({ fleet: fleetOptions({ url: broker.url, store }, {}), log: pino({ level: 'silent' }), group: 'gaps' });
    const dev = await device('pi-6');
    const t = topics(PREFIX, 'pi-6');
    for (const [first, n] of [[1, 5], [8, 2], [12, 1], [20, 1], [30, 1]] as const) await dev.publishAsync(t.events, eventBatch('pi-6', first, n), { qos: 1 });
    await waitFor(() => running?.stats.eventsStored === 10, 5000, '10 stored');
    const json = await fleet(['devices', '--url', broker.url, '--store', store, '--json']);
    const pi6 = (JSON.parse(json.stdout) as Array<Record<string, unknown>>).find((x) => x.deviceId === 'pi-6');
    assert.deepEqual(
      { firstSeq: pi6?.firstSeq, contiguousSeq: pi6?.contiguousSeq, gaps: pi6?.gaps, missing: pi6?.missing },
      { firstSeq: 1, contiguousSeq: 5, gaps: [[6, 7], [10, 11], [13, 19], [21, 29]], missing: 20 },
    );
    const table = await fleet(['devices', '--url', broker.url, '--store', store]);
    const row = table.stdout.split('\n').find((l) => l.startsWith('pi-6')) ?? '';
    assert.match(row, /\s1\.\.5\s+20 missing: 6-7, 10-11, 13-19, \.\.\.$/);
    await running.stop();
    running = undefined;
  });

  test('serve --unshared with a persistent session survives a broker SIGKILL: events sent meanwhile arrive after the restart', async () => {
    const store = temp.make();
    const logOut = new Lines();
    running = await startedServe({ fleet: fleetOptions({ url: broker.url, store }, {}), log: pino({ level: 'info' }, logOut), clientId: 'fleet-serve-durable',
      // Mosquitto 2.0.11 does not persist shared subscriptions: only a plain one keeps events
      // published between the broker's restart and serve's reconnect.
      unshared: true, group: 'durable' });
    const dev = await mqttClient(broker.url, { clientId: 'pi-4', reconnectPeriod: 0 });
    const t = topics(PREFIX, 'pi-4');
    await dev.publishAsync(t.events, eventBatch('pi-4', 1, 5), { qos: 1 });
    await waitFor(() => running?.stats.eventsStored === 5, 5000, 'the first batch');
    await dev.endAsync(true);

    await broker.kill();
    await broker.restart(); // same port, same persistence: the serve session and its subscription are kept
    const dev2 = await mqttClient(broker.url, { clientId: 'pi-4' });
    clients.push(dev2);
    // Published before serve has reconnected: the broker queues it in serve's session.
    await dev2.publishAsync(t.events, eventBatch('pi-4', 6, 5), { qos: 1 });
    await waitFor(() => running?.stats.eventsStored === 10, 15_000, 'the batch sent while serve was away');
    const db = new SqliteFleetStore(join(store, DB_FILE));
    assert.deepEqual((await db.events('pi-4', 0)).map((e) => e.seq), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    await db.close();
    await running.stop();
    running = undefined;
  });

  test('a shared-subscription serve subscribes again after a broker restart', async () => {
    const store = temp.make();
    const logOut = new Lines();
    running = await startedServe({ fleet: fleetOptions({ url: broker.url, store }, {}), log: pino({ level: 'info' }, logOut), clientId: 'fleet-serve-shared', group: 'restart' });
    await broker.kill();
    await broker.restart();
    await waitFor(() => logOut.lines.filter((l) => l.msg === 'subscribed').length === 2, 15_000, 'serve subscribed again');
    const dev = await mqttClient(broker.url, { clientId: 'pi-5' });
    clients.push(dev);
    await dev.publishAsync(topics(PREFIX, 'pi-5').events, eventBatch('pi-5', 1, 3), { qos: 1 });
    await waitFor(() => running?.stats.eventsStored === 3, 5000, 'events after the restart');
    await running.stop();
    running = undefined;
  });
});
