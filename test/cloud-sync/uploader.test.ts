// The uploader against a real Mosquitto: seq order, deletion only after the fleet's ack (or the
// PUBACK in 'broker' mode), re-sends of what no ack covers, live batch size, the rate cap, and a
// broker SIGKILLed mid-upload losing nothing.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { createCloudAgent } from '../../cloud-sync/agent/index.js';
import { startMosquitto, type Mosquitto } from '../helpers/mosquitto.js';
import { topics } from '../../cloud-sync/protocol/index.js';
import { connectClient, eventsConsumer, PREFIX, waitFor } from './helpers/mqtt-client.js';
import { makePort } from './helpers/port.js';
import { startProxy } from './helpers/proxy.js';

let broker: Mosquitto;
before(async () => {
  broker = await startMosquitto();
});
after(async () => {
  await broker.close();
});

test('delivers a backlog in seq order, in batches of upload.batchSize, and empties the outbox', async () => {
  const t = makePort({ mqttUrl: broker.url, cloud: { upload: { batchSize: 7 } } });
  const consumer = await eventsConsumer(broker.url, t.port.device.id);
  for (let i = 0; i < 50; i++) await t.emit('test.tick', { i });
  const agent = createCloudAgent(t.port);
  await agent.start(new AbortController().signal);
  try {
    await waitFor(() => consumer.unique().length === 50, 10_000, '50 events');
    assert.deepEqual(consumer.unique().map((e) => e.seq), Array.from({ length: 50 }, (_, i) => i + 1));
    assert.ok(consumer.batchSizes.every((n) => n <= 7), `batches ${consumer.batchSizes}`);
    await waitFor(() => t.store.outbox.stats().count === 0, 5000, 'outbox empty');
    // Live: a new batch size counts from the next round.
    t.port.liveConfig.apply({ cloud: { upload: { batchSize: 2 } } });
    const before = consumer.batchSizes.length;
    for (let i = 0; i < 6; i++) await t.emit('test.tick', { i });
    await waitFor(() => consumer.unique().length === 56, 5000, '56 events');
    assert.ok(consumer.batchSizes.slice(before).every((n) => n <= 2), `batches after the change ${consumer.batchSizes.slice(before)}`);
    // The consumer may get the last message before the device gets its PUBACK: wait for it.
    await waitFor(() => agent.stats().eventsPublished >= 56, 5000, 'PUBACK of all 56');
  } finally {
    await agent.stop();
    await consumer.close();
    await t.close(true);
  }
});

test("'broker' mode deletes events only after the PUBACK: held PUBACKs leave them in the outbox", async () => {
  const proxy = await startProxy(broker.port);
  // One event per message: ten PUBACKs, 4 bytes each (MQTT 3.1.1), for the proxy to hold.
  const t = makePort({ mqttUrl: proxy.url, cloud: { keepaliveSeconds: 60, upload: { batchSize: 1 }, delivery: { ack: 'broker' } } });
  const consumer = await eventsConsumer(broker.url, t.port.device.id);
  const agent = createCloudAgent(t.port);
  await agent.start(new AbortController().signal);
  try {
    await waitFor(() => agent.online, 5000, 'online');
    proxy.hold(true);
    for (let i = 0; i < 10; i++) await t.emit('test.held', { i });
    // The broker has them (the consumer sees them), but no PUBACK reached the device.
    await waitFor(() => consumer.unique().length === 10, 5000, 'consumer got 10');
    await waitFor(() => proxy.heldBytes() >= 40, 5000, 'the ten PUBACKs held back');
    assert.equal(t.store.outbox.stats().count, 10);
    assert.equal(t.store.outbox.stats().inFlight, 10);
    proxy.hold(false);
    await waitFor(() => t.store.outbox.stats().count === 0, 5000, 'acked after PUBACK');
  } finally {
    await agent.stop();
    await consumer.close();
    await proxy.close();
    await t.close(true);
  }
});

test('respects upload.maxEventsPerSecond', async () => {
  const t = makePort({ mqttUrl: broker.url, cloud: { upload: { batchSize: 100, maxEventsPerSecond: 40 } } });
  const consumer = await eventsConsumer(broker.url, t.port.device.id);
  for (let i = 0; i < 60; i++) await t.emit('test.rate', { i });
  const agent = createCloudAgent(t.port);
  const t0 = Date.now();
  await agent.start(new AbortController().signal);
  try {
    await waitFor(() => consumer.unique().length === 60, 10_000, '60 events');
    // 40 at once (one second of budget), the other 20 at 40/s: at least ~0.5 s.
    assert.ok(Date.now() - t0 >= 450, `took ${Date.now() - t0} ms`);
    assert.ok(consumer.batchSizes.every((n) => n <= 40));
  } finally {
    await agent.stop();
    await consumer.close();
    await t.close(true);
  }
});

test('broker SIGKILLed mid-upload and restarted: nothing lost, every seq once after dedup', async () => {
  const N = 2000;
  const t = makePort({ mqttUrl: broker.url, cloud: { upload: { batchSize: 20, maxEventsPerSecond: 4000 }, delivery: { ackTimeoutMs: 500 } } });
  const consumer = await eventsConsumer(broker.url, t.port.device.id);
  for (let i = 0; i < N; i++) await t.emit('test.kill', { i });
  const agent = createCloudAgent(t.port);
  await agent.start(new AbortController().signal);
  try {
    await waitFor(() => consumer.raw.length >= 300, 10_000, 'upload under way');
    await broker.kill();
    assert.ok(t.store.outbox.stats().count > 0, 'killed in the middle');
    await broker.restart();
    await waitFor(() => consumer.unique().length === N, 30_000, `all ${N} events (have ${consumer.unique().length})`);
    // Sorted: what the broker lost is sent again after later seqs went (docs/cloud-sync.md, "Order").
    const seqs = consumer.unique().map((e) => e.seq).sort((a, b) => a - b);
    assert.deepEqual(seqs, Array.from({ length: N }, (_, i) => i + 1));
    await waitFor(() => t.store.outbox.stats().count === 0, 10_000, 'outbox empty');
    assert.ok(agent.stats().connects >= 2);
  } finally {
    await agent.stop();
    await consumer.close();
    await t.close(true);
  }
});

test("'fleet' mode: PUBACKed events stay as sent, awaiting the fleet, until its ack; unacked ones are sent again, oldest first", async () => {
  const t = makePort({ mqttUrl: broker.url, cloud: { upload: { batchSize: 5 }, delivery: { ackTimeoutMs: 300, maxResendMs: 600 } } });
  const deviceId = t.port.device.id;
  // A consumer that does not ack: this test sends the acks itself.
  const consumer = await eventsConsumer(broker.url, deviceId, `consumer-${deviceId}`, false);
  const fleet = await connectClient(broker.url);
  // Stored before the agent starts: two messages, 1-5 and 6-10.
  for (let i = 0; i < 10; i++) await t.emit('test.awaiting', { i });
  const agent = createCloudAgent(t.port);
  await agent.start(new AbortController().signal);
  try {
    await waitFor(() => agent.stats().eventsPublished >= 10, 5000, 'all 10 PUBACKed');
    await waitFor(() => t.store.outbox.stats().sent === 10, 5000, '10 sent, awaiting the fleet');
    assert.equal(t.store.outbox.stats().count, 10, 'nothing deleted at the PUBACK');
    // Acks in any order, overlapping, one for seqs never sent: only what they cover goes.
    const ack = (ranges: [number, number][]) => fleet.publishAsync(topics(PREFIX, deviceId).eventsAck, JSON.stringify({ ranges }), { qos: 1 });
    await ack([[6, 8]]);
    await ack([[1, 3], [2, 4], [900, 1000]]);
    await waitFor(() => t.store.outbox.stats().count === 3, 5000, 'acked ones deleted');
    // 5, 9 and 10 had no ack: sent again after the timeout, oldest first.
    await waitFor(() => consumer.raw.length >= 13, 5000, 're-sent');
    const again = consumer.raw.slice(10).map((e) => e.seq);
    assert.deepEqual(again.slice(0, 3), [5, 9, 10]);
    // Not a flood: with no ack at all the re-sends back off (300, 600, 600 ms ...), so a few rounds at most.
    await waitFor(() => consumer.raw.length >= 16, 5000, 'a second re-send');
    await ack([[5, 5], [9, 10]]);
    await waitFor(() => t.store.outbox.stats().count === 0, 5000, 'outbox empty');
    assert.equal(t.store.outbox.stats().sent, 0);
  } finally {
    await agent.stop();
    await fleet.endAsync();
    await consumer.close();
    await t.close(true);
  }
});

test("'fleet' mode: a payload that is not a valid ack is ignored and counted, and deletes nothing", async () => {
  const t = makePort({ mqttUrl: broker.url });
  const deviceId = t.port.device.id;
  const consumer = await eventsConsumer(broker.url, deviceId, `consumer-${deviceId}`, false);
  const fleet = await connectClient(broker.url);
  const agent = createCloudAgent(t.port);
  await agent.start(new AbortController().signal);
  try {
    await waitFor(() => agent.online, 5000, 'online');
    for (let i = 0; i < 3; i++) await t.emit('test.bad-ack', { i });
    await waitFor(() => t.store.outbox.stats().sent === 3, 5000, 'sent');
    const topic = topics(PREFIX, deviceId).eventsAck;
    for (const bad of ['not json', '{"ranges":[]}', '{"ranges":[[3,1]]}', '{"ranges":[[0,2]]}', '{"ranges":[["1","2"]]}']) {
      await fleet.publishAsync(topic, bad, { qos: 1 });
    }
    await waitFor(() => agent.stats().ignored.json + agent.stats().ignored.schema === 5, 5000, '5 ignored');
    assert.equal(t.store.outbox.stats().count, 3);
  } finally {
    await agent.stop();
    await fleet.endAsync();
    await consumer.close();
    await t.close(true);
  }
});
