// Desired/reported state, live config, commands and bad payloads against a real Mosquitto.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { createCloudAgent, type CloudAgent } from '../../cloud-sync/agent/index.js';
import { reportedSchema, sign, topics } from '../../cloud-sync/protocol/index.js';
import { freePort } from '../helpers/free-port.js';
import { startMosquitto, type Mosquitto } from '../helpers/mosquitto.js';
import { connectClient, eventsConsumer, PREFIX, publishDesired, readReported, waitFor } from './helpers/mqtt-client.js';
import { makeKeys, type TestKeys } from './helpers/models.js';
import { makePort, type TestPort } from './helpers/port.js';
import { fleet } from '../fleet/harness.js';

let broker: Mosquitto;
let keys: TestKeys;
before(async () => {
  broker = await startMosquitto();
  keys = makeKeys();
});
after(async () => {
  await broker.close();
});

async function device(mqttUrl = broker.url, extra: { dataDir?: string; deviceId?: string } = {}): Promise<{ t: TestPort; agent: CloudAgent }> {
  const t = makePort({ mqttUrl, ...extra, cloud: { maxPayloadBytes: 4096, trustedKeysFile: keys.trustedKeysFile } });
  const agent = createCloudAgent(t.port);
  await agent.start(new AbortController().signal);
  return { t, agent };
}

const ofType = (t: TestPort, type: string) => t.events.filter((e) => e.type === type).map((e) => e.payload as Record<string, unknown>);

test('desired versions only rise: an older or equal document is ignored and counted', async () => {
  const { t, agent } = await device();
  try {
    await waitFor(() => agent.online, 5000, 'online');
    await publishDesired(broker.url, t.port.device.id, { version: 5, config: { cloud: { upload: { batchSize: 5 } } } });
    await waitFor(() => t.port.liveConfig.current().cloud.upload.batchSize === 5, 5000, 'v5 applied');
    await publishDesired(broker.url, t.port.device.id, { version: 3, config: { cloud: { upload: { batchSize: 3 } } } });
    await publishDesired(broker.url, t.port.device.id, { version: 5, config: { cloud: { upload: { batchSize: 4 } } } });
    await waitFor(() => agent.stats().ignored.staleDesired >= 2, 5000, 'stale documents counted');
    assert.equal(t.port.liveConfig.current().cloud.upload.batchSize, 5);
    // Said in state/reported (the fleet's push --wait and devices show it); the same document
    // again (the retained one at every subscribe) is not.
    const ignored = await waitFor(async () => {
      const r = await readReported(broker.url, t.port.device.id);
      return (r?.ignored as { version: number; reason: string } | undefined)?.version === 5 ? r : null;
    }, 5000, 'ignored v5 reported');
    assert.equal(ignored.desiredVersion, 5);
    assert.match((ignored.ignored as { reason: string }).reason, /not above version 5/);
    await publishDesired(broker.url, t.port.device.id, { version: 6, config: { cloud: { upload: { batchSize: 6 } } } });
    await waitFor(() => t.port.liveConfig.current().cloud.upload.batchSize === 6, 5000, 'v6 applied');
    const rep = await waitFor(async () => {
      const r = await readReported(broker.url, t.port.device.id);
      return r?.desiredVersion === 6 ? r : null;
    }, 5000, 'reported v6');
    assert.equal((rep.config as { cloud: { upload: { batchSize: number } } }).cloud.upload.batchSize, 6);
    assert.equal(rep.ignored, undefined, 'an applied document clears it');
    assert.ok(reportedSchema.safeParse(rep).success, 'state/reported holds to the protocol schema');
  } finally {
    await agent.stop();
    await t.close(true);
    await publishDesired(broker.url, t.port.device.id, null);
  }
});

test('a desired document persisted before a restart is applied after it, even offline', async () => {
  const first = await device();
  const id = first.t.port.device.id;
  await waitFor(() => first.agent.online, 5000, 'online');
  await publishDesired(broker.url, id, { version: 9, models: { gone: null }, config: { log: { level: 'debug' } } });
  await waitFor(() => first.agent.reported().desiredVersion === 9, 5000, 'v9 applied');
  await first.agent.stop();
  await first.t.close();
  // Reboot with no broker reachable: the document comes from the device's own store.
  const dead = `mqtt://127.0.0.1:${await freePort()}`;
  const second = await device(dead, { dataDir: first.t.dataDir, deviceId: id });
  try {
    assert.equal(second.agent.online, false);
    assert.equal(second.agent.reported().desiredVersion, 9);
    // The live config it carried was applied once, before the reboot; the runtime restores it.
    assert.equal(second.t.appliedConfigs.length, 0);
  } finally {
    await second.agent.stop();
    await second.t.close(true);
    await publishDesired(broker.url, id, null);
  }
});

test('live config: an invalid document is rejected whole, reported with its reason, old config kept', async () => {
  const { t, agent } = await device();
  try {
    await waitFor(() => agent.online, 5000, 'online');
    // One valid key next to an invalid one: nothing of it applies.
    await publishDesired(broker.url, t.port.device.id, { version: 1, config: { log: { level: 'debug' }, cloud: { upload: { batchSize: 0 } } } });
    const rep = await waitFor(async () => {
      const r = await readReported(broker.url, t.port.device.id);
      return r?.configError ? r : null;
    }, 5000, 'configError reported');
    assert.equal((rep.configError as { code: string }).code, 'PERCH_ERR_LIVE_CONFIG_INVALID');
    // The test config's level is 'silent'; 'debug' was not applied.
    assert.equal((rep.config as { log: { level: string } }).log.level, 'silent');
    assert.equal(t.port.liveConfig.current().log.level, 'silent');
    assert.equal(ofType(t, 'desired.config.rejected').length, 1);
    // A setting that needs a restart is refused the same way; a valid one then clears the error.
    await publishDesired(broker.url, t.port.device.id, { version: 2, config: { server: { port: 1 } } });
    await waitFor(() => ofType(t, 'desired.config.rejected').length === 2, 5000, 'second rejection');
    await publishDesired(broker.url, t.port.device.id, { version: 3, config: { log: { level: 'warn' } } });
    await waitFor(async () => {
      const r = await readReported(broker.url, t.port.device.id);
      return r?.desiredVersion === 3 && !r.configError && (r.config as { log: { level: string } }).log.level === 'warn';
    }, 5000, 'valid config reported');
  } finally {
    await agent.stop();
    await t.close(true);
    await publishDesired(broker.url, t.port.device.id, null);
  }
});

test('commands: reportState, flushCache and rollback each record an event with the id and outcome', async () => {
  const { t, agent } = await device();
  const cloud = await connectClient(broker.url);
  const cmdTopic = topics(PREFIX, t.port.device.id).commands;
  const send = (cmd: unknown) => cloud.publishAsync(cmdTopic, JSON.stringify(cmd), { qos: 1 });
  try {
    await waitFor(() => agent.online, 5000, 'online');
    t.models.seed('vad', 1);
    await t.models.install('vad', 2, new URL(import.meta.url).pathname);
    await send({ id: 'c1', command: 'reportState' });
    await send({ id: 'c2', command: 'flushCache' });
    await send({ id: 'c3', command: 'rollback', args: { model: 'vad' } });
    await send({ id: 'c4', command: 'rollback', args: { model: 'vad' } });
    await send({ id: 'c5', command: 'rollback' });
    await waitFor(() => ofType(t, 'command.succeeded').length + ofType(t, 'command.failed').length === 5, 5000, '5 outcomes');
    const ok = Object.fromEntries(ofType(t, 'command.succeeded').map((e) => [e.id, e]));
    const failed = Object.fromEntries(ofType(t, 'command.failed').map((e) => [e.id, e]));
    assert.deepEqual(Object.keys(ok).sort(), ['c1', 'c2', 'c3']);
    assert.deepEqual((ok.c2 as { result: unknown }).result, { deleted: 7 });
    assert.equal(t.flushes, 1);
    assert.deepEqual(t.models.rollbacks, ['vad']);
    assert.equal((failed.c4 as { error: { code: string } }).error.code, 'PERCH_ERR_NO_PREVIOUS_VERSION');
    assert.equal((failed.c5 as { error: { code: string } }).error.code, 'PERCH_ERR_MQTT_PAYLOAD_INVALID');
    const rep = await waitFor(async () => {
      const r = await readReported(broker.url, t.port.device.id);
      const vad = (r?.models as Record<string, { error?: { code: string } }> | undefined)?.vad;
      return vad?.error ? vad : null;
    }, 5000, 'rollback reported');
    assert.equal(rep.error?.code, 'PERCH_ERR_MODEL_ROLLED_BACK');
  } finally {
    await cloud.endAsync(true);
    await agent.stop();
    await t.close(true);
  }
});

test('bad payloads are logged, counted and ignored; the agent keeps working', async () => {
  const { t, agent } = await device();
  const cloud = await connectClient(broker.url);
  const tp = topics(PREFIX, t.port.device.id);
  try {
    await waitFor(() => agent.online, 5000, 'online');
    await cloud.publishAsync(tp.desired, 'not json {', { qos: 1 });
    await cloud.publishAsync(tp.commands, JSON.stringify({ id: 'x', command: 'selfDestruct' }), { qos: 1 });
    await cloud.publishAsync(tp.desired, JSON.stringify({ version: 'one' }), { qos: 1 });
    await cloud.publishAsync(tp.commands, Buffer.alloc(5000, 0x20), { qos: 1 });
    // A download in progress, then a chunk of it the device never asked for (index out of range).
    // Signed, or it would be refused before any chunk is asked for.
    const signature = sign(keys.privateKeyPem, 'm', 1, 'a'.repeat(64), 100);
    await publishDesired(broker.url, t.port.device.id, { version: 1, models: { m: { version: 1, sha256: 'a'.repeat(64), size: 100, chunkSize: 10, signature } } });
    await waitFor(() => agent.stats().chunksRequested > 0, 5000, 'download under way');
    await cloud.publishAsync(tp.chunk('m', 1, 50), Buffer.from([1, 2, 3]), { qos: 1 });
    await waitFor(() => {
      const s = agent.stats().ignored;
      return s.json === 1 && s.schema === 2 && s.oversized === 1 && s.unknownChunk === 1;
    }, 5000, 'all counted').catch((err: Error) => {
      throw new Error(`${err.message}: ${JSON.stringify(agent.stats().ignored)}`);
    });
    await cloud.publishAsync(tp.commands, JSON.stringify({ id: 'after', command: 'reportState' }), { qos: 1 });
    await waitFor(() => ofType(t, 'command.succeeded').some((e) => e.id === 'after'), 5000, 'still working');
    assert.equal(agent.online, true);
  } finally {
    await cloud.endAsync(true);
    await agent.stop();
    await t.close(true);
    await publishDesired(broker.url, t.port.device.id, null);
  }
});

test('status: retained online on connect, offline on clean shutdown', async () => {
  const { t, agent } = await device();
  const watcher = await connectClient(broker.url);
  const seen: { online: boolean; bootId: string }[] = [];
  watcher.on('message', (_t, p) => seen.push(JSON.parse(p.toString()) as { online: boolean; bootId: string }));
  await watcher.subscribeAsync(topics(PREFIX, t.port.device.id).status, { qos: 1 });
  const states: string[] = [];
  t.bus.on('connectivity', (c) => states.push(c.state));
  try {
    await waitFor(() => seen.some((s) => s.online), 5000, 'online status');
    assert.equal(seen.find((s) => s.online)?.bootId, t.port.device.bootId);
    await agent.stop();
    await waitFor(() => seen.at(-1)?.online === false, 5000, 'offline status');
    assert.deepEqual(states.includes('offline'), true);
  } finally {
    await watcher.endAsync(true);
    await t.close(true);
  }
});

test('state/reported carries the event backlog, and goes out again as the backlog drains', async () => {
  // 20 events a second, one per message: a backlog of 60 takes about 3 s to drain.
  const t = makePort({ mqttUrl: broker.url, cloud: { upload: { batchSize: 1, maxEventsPerSecond: 20 } } });
  for (let i = 0; i < 60; i++) await t.emit('test.tick', { i });
  const watcher = await connectClient(broker.url);
  const seen: Array<{ outbox?: { count: number; bytes?: number } }> = [];
  watcher.on('message', (_topic, payload) => seen.push(JSON.parse(String(payload)) as (typeof seen)[number]));
  await watcher.subscribeAsync(topics(PREFIX, t.port.device.id).reported, { qos: 1 });
  // The fleet's stand-in: it acks what it gets, so the device deletes events (docs/cloud-sync.md).
  const consumer = await eventsConsumer(broker.url, t.port.device.id);
  const agent = createCloudAgent(t.port, { backlogReportMs: 100 });
  await agent.start(new AbortController().signal);
  try {
    await waitFor(() => seen.some((r) => (r.outbox?.count ?? 0) > 0), 10_000, 'a reported backlog while events wait');
    const withBacklog = seen.find((r) => (r.outbox?.count ?? 0) > 0);
    assert.ok((withBacklog?.outbox?.bytes ?? 0) > 0, 'bytes too');
    await waitFor(() => seen.some((r) => r.outbox?.count === 0), 20_000, 'the drained backlog reported');
    assert.ok(seen.every((r) => reportedSchema.safeParse(r).success), 'every state/reported holds to the protocol schema');

    // What `perch fleet devices` makes of it.
    const store = mkdtempSync(join(tmpdir(), 'perch-fleet-'));
    try {
      const r = await fleet(['devices', '--json', '--url', broker.url, '--store', store]);
      assert.equal(r.code, 0, r.stderr);
      const row = (JSON.parse(r.stdout) as Array<{ deviceId: string; backlog: number | null }>).find((d) => d.deviceId === t.port.device.id);
      assert.equal(row?.backlog, 0);
    } finally {
      rmSync(store, { recursive: true, force: true });
    }
  } finally {
    await watcher.endAsync();
    await agent.stop();
    await consumer.close();
    await t.close(true);
  }
});
