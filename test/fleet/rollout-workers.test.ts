// Two `perch fleet serve` workers (real processes) on one PostgreSQL fleet database drive one
// rollout exactly once (docs/fleet.md "Several serve workers and restarts"): a real Mosquitto,
// real simulated devices (`perch fleet simulate`, each on its own MQTT connection), a rollout in
// three waves with a bake, both workers ticking every 100 ms. Each device is sent the model's
// desired document once (counted on the broker, where the devices read it), and every state
// transition of the rollout and its waves is logged by one worker, once.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { MqttClient } from 'mqtt';
import { deviceIds } from '../../cloud-sync/fleet/simulate/sim-fleet.js';
import { generateSigningKeyPair } from '../../cloud-sync/protocol/index.js';
import { fleetTopics, parseTopic } from '../../cloud-sync/protocol/topics.js';
import { waitFor } from '../helpers/clients.js';
import { startMosquitto, type Mosquitto } from '../helpers/mosquitto.js';
import { MODEL_FILES } from '../helpers/paths.js';
import { startPostgres, type Postgres } from '../helpers/postgres.js';
import type { Child } from '../helpers/wire.js';
import { fleet, mqttClient, PREFIX, spawnFleet, TempDirs } from './harness.js';

const N = 8;
const MODEL = 'ocr-cls';

describe('two fleet serve workers on PostgreSQL', () => {
  const temp = new TempDirs();
  const children: Child[] = [];
  let broker: Mosquitto;
  let pg: Postgres;
  let watcher: MqttClient | undefined;

  before(async () => {
    broker = await startMosquitto();
    pg = await startPostgres();
  });
  after(async () => {
    await watcher?.endAsync().catch(() => undefined);
    for (const c of children) await c.kill();
    await broker.close();
    await pg.close();
    temp.cleanup();
  });

  test('one rollout in three waves is driven once: one desired document per device, each transition logged once', async () => {
    const db = await pg.createDatabase();
    const store = temp.make();
    const keyDir = temp.make();
    const keys = generateSigningKeyPair();
    writeFileSync(join(keyDir, 'pub.pem'), keys.publicKeyPem);
    writeFileSync(join(keyDir, 'priv.pem'), keys.privateKeyPem);
    const workers = [1, 2].map((n) => {
      const w = spawnFleet(['serve', '--url', broker.url, '--store', store, '--db', db, '--client-id', `fleet-worker-${n}`, '--progress-ms', '0',
        '--rollout-tick-ms', '100', '--rollout-lease-ms', '3000']);
      children.push(w);
      return w;
    });
    for (const w of workers) await waitFor(() => w.logLines().some((l) => l.msg === 'fleet serve ready') || !w.running, 30_000, 'serve ready');
    for (const w of workers) assert.ok(w.running, w.stderr);

    // Every desired document the broker carries to a device, counted per device.
    const sent = new Map<string, number[]>();
    watcher = await mqttClient(broker.url);
    watcher.on('message', (topic, payload) => {
      const t = parseTopic(PREFIX, topic);
      if (t?.kind !== 'desired' || payload.length === 0) return;
      const doc = JSON.parse(payload.toString()) as { models?: Record<string, { version: number } | null> };
      const v = doc.models?.[MODEL]?.version;
      if (v !== undefined) sent.set(t.deviceId, [...(sent.get(t.deviceId) ?? []), v]);
    });
    await watcher.subscribeAsync(fleetTopics(PREFIX).desired, { qos: 1 });

    const sim = spawnFleet(['simulate', '--devices', String(N), '--broker', broker.url, '--id-prefix', 'w-', '--trusted-keys', join(keyDir, 'pub.pem'), '--progress-ms', '0']);
    children.push(sim);
    const ids = deviceIds('w-', N);
    // Both workers record every device (status and reported go to each of them).
    await waitFor(async () => {
      const r = await fleet(['devices', '--json', '--url', broker.url, '--store', store, '--db', db]);
      const rows = r.code === 0 ? (JSON.parse(r.stdout) as Array<{ deviceId: string; online: boolean }>) : [];
      return ids.every((id) => rows.some((d) => d.deviceId === id && d.online));
    }, 60_000, 'the fleet store knows every simulated device online', 250);

    const start = await fleet(['rollout', 'start', '--store', store, '--db', db, '--model', MODEL, '--version', '3', '--file', MODEL_FILES.ocrCls,
      '--sign-key', join(keyDir, 'priv.pem'), '--all', '--waves', '1,50%,100%', '--bake', '500ms', '--max-failures', '0']);
    assert.equal(start.code, 0, start.stderr);
    const id = start.stdout.trim();
    const done = await waitFor(async () => {
      const r = await fleet(['rollout', 'status', id, '--json', '--store', store, '--db', db]);
      const s = JSON.parse(r.stdout) as { state: string; waves: Array<{ size: number; state: string }>; devices: Record<string, { status: string; version: number | null }> };
      return s.state === 'completed' || s.state === 'aborted' ? s : null;
    }, 120_000, 'rollout settled', 250);
    assert.equal(done.state, 'completed', JSON.stringify(done));
    assert.deepEqual(done.waves, [{ size: 1, state: 'passed' }, { size: 3, state: 'passed' }, { size: 4, state: 'passed' }]);
    for (const d of ids) assert.deepEqual(done.devices[d], { status: 'active', version: 3 });

    // Once per device: every device is in one wave and got the version's document once.
    await waitFor(() => ids.every((d) => sent.has(d)), 10_000, 'the broker delivered every desired document');
    for (const d of ids) assert.deepEqual(sent.get(d), [3], `${d} got ${JSON.stringify(sent.get(d))}`);

    // Each transition logged by exactly one of the two workers, once.
    const lines = () => workers.flatMap((w) => w.logLines()).filter((l) => l.rollout === id);
    await waitFor(() => lines().some((l) => l.msg === 'rollout state' && l.state === 'completed'), 10_000, 'completion logged');
    const transitions = lines().filter((l) => l.msg === 'rollout state' || l.msg === 'rollout wave').map((l) => `${String(l.msg)} ${String(l.wave ?? '')} ${String(l.state)}`);
    assert.deepEqual(transitions.sort(), [
      'rollout state  completed',
      'rollout wave 0 passed', 'rollout wave 0 running',
      'rollout wave 1 passed', 'rollout wave 1 running',
      'rollout wave 2 passed', 'rollout wave 2 running',
    ]);
    const deviceLines = lines().filter((l) => l.msg === 'rollout device');
    for (const d of ids) {
      assert.deepEqual(deviceLines.filter((l) => l.deviceId === d).map((l) => l.status), ['updating', 'active'], d);
    }
  });
});
