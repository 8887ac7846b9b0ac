// The rollback command names the version it rolls back from (docs/protocol.md section 5): a real
// `perch serve` whose repository holds versions 1, 2 and 3 of a model (3 serves, 2 is kept for
// rollback), a real Mosquitto, commands published as the fleet publishes them. A delayed
// rollback meant for version 2 used to roll back version 3, and a replayed one went back twice;
// both are now refused PERCH_ERR_ROLLBACK_STALE in the event stream and nothing moves. A
// rollback without a version (fleets older than it) still rolls back what serves.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { topics } from '../../cloud-sync/protocol/index.js';
import { MODEL_FILES } from '../helpers/paths.js';
import { shippedModelConfig } from '../helpers/repository.js';
import { e2eSetup } from './helpers/e2e.js';
import { connectClient, eventsConsumer, PREFIX, readReported, waitFor, type EventsConsumer } from './helpers/mqtt-client.js';

const MODEL = 'silero-vad';
const e2e = e2eSetup({
  [MODEL]: { versions: { 1: MODEL_FILES.sileroVad16k, 2: MODEL_FILES.sileroVad16k, 3: MODEL_FILES.sileroVad16k }, config: shippedModelConfig(MODEL) },
});

type Outcome = { id: string; ok: boolean; result?: Record<string, unknown>; error?: { code: string; message: string } };

function outcome(consumer: EventsConsumer, id: string): Promise<Outcome> {
  return waitFor(() => {
    const e = consumer.unique().find((x) => (x.type === 'command.succeeded' || x.type === 'command.failed') && (x.payload as Outcome).id === id);
    return e ? (e.payload as Outcome) : null;
  }, 30_000, `outcome of command ${id}`);
}

async function serving(deviceId: string, version: number): Promise<void> {
  await waitFor(async () => {
    const m = ((await readReported(e2e.broker.url, deviceId))?.models as Record<string, { version: number; status: string; active?: { version: number } | null }> | undefined)?.[MODEL];
    return m !== undefined && (m.status === 'active' ? m.version : m.active?.version) === version;
  }, 30_000, `reported: version ${version} serves`);
}

test('rollback args.version: a delayed or replayed rollback is refused ROLLBACK_STALE; the right one rolls back; none given rolls back as before', async () => {
  const { deviceId, configFile } = e2e.device('rbv');
  const consumer = await eventsConsumer(e2e.broker.url, deviceId);
  const { port } = await e2e.serve(configFile);
  const cloud = await connectClient(e2e.broker.url);
  const send = (id: string, args: Record<string, unknown>) =>
    cloud.publishAsync(topics(PREFIX, deviceId).commands, JSON.stringify({ id, command: 'rollback', args }), { qos: 1 });
  const ready = async (v: number) => (await fetch(`http://127.0.0.1:${port}/v2/models/${MODEL}/versions/${v}/ready`)).status;
  try {
    await serving(deviceId, 3);

    // A rollback meant for version 2 (sent while 2 served, delivered late) must not touch 3.
    await send('late', { model: MODEL, version: 2 });
    const late = await outcome(consumer, 'late');
    assert.equal(late.ok, false, JSON.stringify(late));
    assert.equal(late.error?.code, 'PERCH_ERR_ROLLBACK_STALE');
    assert.equal(await ready(3), 200, 'version 3 still serves');

    // The rollback meant for 3 goes back to 2.
    await send('r1', { model: MODEL, version: 3 });
    const r1 = await outcome(consumer, 'r1');
    assert.deepEqual({ ok: r1.ok, result: r1.result }, { ok: true, result: { model: MODEL, version: 2, from: 3 } });
    await serving(deviceId, 2);

    // The same command again (a QoS 1 re-delivery, a replay): refused, 2 serves on (it used to go back to 1).
    await send('r1', { model: MODEL, version: 3 });
    await waitFor(() => consumer.unique().filter((e) => e.type === 'command.failed' && (e.payload as Outcome).id === 'r1').length === 1, 30_000, 'the replay refused');
    const replay = consumer.unique().find((e) => e.type === 'command.failed' && (e.payload as Outcome).id === 'r1')?.payload as Outcome;
    assert.equal(replay.error?.code, 'PERCH_ERR_ROLLBACK_STALE');
    assert.equal(await ready(2), 200, 'version 2 still serves');

    // Not a version: refused as a bad payload.
    await send('bad', { model: MODEL, version: 'two' });
    assert.equal((await outcome(consumer, 'bad')).error?.code, 'PERCH_ERR_MQTT_PAYLOAD_INVALID');

    // A fleet older than args.version: the rollback rolls back whatever serves, as it did.
    await send('old', { model: MODEL });
    const old = await outcome(consumer, 'old');
    assert.deepEqual({ ok: old.ok, result: old.result }, { ok: true, result: { model: MODEL, version: 1 } });
    await serving(deviceId, 1);
    const rolledBack = consumer.unique().filter((e) => e.type === 'model.rolled_back').map((e) => (e.payload as { from: number; to: number }));
    assert.deepEqual(rolledBack.map((e) => [e.from, e.to]), [[3, 2], [2, 1]], 'exactly the two rollbacks meant');
  } finally {
    await cloud.endAsync(true);
    await consumer.close();
  }
});
