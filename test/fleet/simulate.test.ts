// `perch fleet simulate` as a real process against a real Mosquitto and a real `fleet serve`:
// the simulated devices announce themselves with labels, take a signed model over MQTT chunks
// (failing to load for the share --failure-rate picks, by device and version), report health,
// obey rollback, and their events are stored once and acked.
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { MqttClient } from 'mqtt';
import { pino } from 'pino';
import { fleetOptions } from '../../cloud-sync/fleet/cli/options.js';
import { startServe, type RunningServe } from '../../cloud-sync/fleet/serve/daemon.js';
import { deviceIds } from '../../cloud-sync/fleet/simulate/sim-fleet.js';
import { unitHash } from '../../cloud-sync/fleet/simulate/sim-device.js';
import { openFleetStore } from '../../cloud-sync/fleet/store/open.js';
import { generateSigningKeyPair } from '../../cloud-sync/protocol/index.js';
import { topics } from '../../cloud-sync/protocol/topics.js';
import { readRetained } from '../cloud-sync/helpers/mqtt-client.js';
import { waitFor } from '../helpers/clients.js';
import { startMosquitto, type Mosquitto } from '../helpers/mosquitto.js';
import { MODEL_FILES } from '../helpers/paths.js';
import type { Child } from '../helpers/wire.js';
import { fleet, mqttClient, PREFIX, spawnFleet, TempDirs } from './harness.js';

const N = 40;
const FAILURE_RATE = 0.25;

describe('fleet simulate', () => {
  const temp = new TempDirs();
  const children: Child[] = [];
  const clients: MqttClient[] = [];
  let broker: Mosquitto;
  let serve: RunningServe | undefined;

  before(async () => {
    broker = await startMosquitto();
  });
  after(async () => {
    for (const c of clients) await c.endAsync().catch(() => undefined);
    await serve?.stop();
    for (const c of children) await c.kill();
    await broker.close();
    temp.cleanup();
  });

  test(`${N} devices: labels, a signed model over chunks with load failures, health, rollback, events stored once`, async () => {
    const store = temp.make();
    const keys = generateSigningKeyPair();
    const keyDir = temp.make();
    writeFileSync(join(keyDir, 'pub.pem'), keys.publicKeyPem);
    writeFileSync(join(keyDir, 'priv.pem'), keys.privateKeyPem);
    serve = await startServe({ fleet: fleetOptions({ url: broker.url, store }, {}), log: pino({ level: 'silent' }) });

    const sim = spawnFleet([
      'simulate', '--devices', String(N), '--broker', broker.url, '--labels', 'site=lab,hw=sim', '--shards', '4',
      '--failure-rate', String(FAILURE_RATE), '--trusted-keys', join(keyDir, 'pub.pem'), '--events-per-second', '2', '--progress-ms', '200',
    ]);
    children.push(sim);
    await waitFor(() => sim.logLines().find((l) => l.msg === 'simulate ready') ?? (sim.running ? null : { exited: true }), 90_000, 'simulate ready');
    assert.ok(sim.running, sim.stderr);
    const ids = deviceIds('sim-', N);
    assert.equal(ids[0], 'sim-00');

    const db = await openFleetStore({ store });
    try {
      await waitFor(async () => (await db.devices()).filter((d) => d.online).length === N, 20_000, 'every device online in the fleet store');
      // The retained status, as the broker holds it, carries the labels (config device.labels' shape).
      const status = await readRetained(broker.url, topics(PREFIX, 'sim-07').status);
      assert.deepEqual(status?.labels, { site: 'lab', hw: 'sim', shard: '3' });
      assert.equal(status?.online, true);

      // A signed model pushed to 8 devices through the real CLI, over MQTT chunks.
      const model = MODEL_FILES.sileroVad16k;
      const targets = ids.slice(0, 8);
      for (const id of targets) {
        const r = await fleet(['push', '--url', broker.url, '--store', store, '--device', id, '--model', 'vad', '--version', '2', '--file', model, '--sign-key', join(keyDir, 'priv.pem'), '--chunk-size', '65536']);
        assert.equal(r.code, 0, r.stderr);
      }
      const expectFail = new Set(targets.filter((id) => unitHash(`${id}/vad/2/load`) < FAILURE_RATE));
      const statusOf = async (id: string): Promise<{ version: number; status: string; error?: { code: string } } | undefined> =>
        ((await db.device(id))?.reported as { models?: Record<string, { version: number; status: string; error?: { code: string } }> } | undefined)?.models?.vad;
      await waitFor(async () => {
        for (const id of targets) {
          const m = await statusOf(id);
          if (m?.version !== 2 || m.status !== (expectFail.has(id) ? 'failed' : 'active')) return false;
        }
        return true;
      }, 60_000, 'every target active or failed as its hash says');
      for (const id of expectFail) assert.equal((await statusOf(id))?.error?.code, 'PERCH_ERR_MODEL_LOAD_FAILED');
      const ok = targets.find((id) => !expectFail.has(id));
      assert.ok(ok, 'at least one device took the model');
      const rep = (await readRetained(broker.url, topics(PREFIX, ok).reported)) as { health?: { models: Record<string, Record<string, { errorRate: number }>> } } | null;
      assert.equal(rep?.health?.models.vad?.['2']?.errorRate, 0, 'in-service health of the active version');
      // Devices not pushed to never asked for a chunk: the bytes moved are the targets' only.
      const size = readFileSync(model).length;
      await waitFor(() => (sim.logLines().at(-1)?.chunkBytesReceived as number) === size * targets.length, 5000, 'chunk bytes of the 8 targets');

      // Rollback of a device that had no earlier version: refused, as a device does.
      const dev = await mqttClient(broker.url, { clientId: 'test-fleet' });
      clients.push(dev);
      await dev.publishAsync(topics(PREFIX, ok).commands, JSON.stringify({ id: 'c1', command: 'rollback', args: { model: 'vad' } }), { qos: 1 });
      await waitFor(async () => (await db.events(ok, 0, 10_000)).some((e) => e.type === 'command.failed' && (e.payload as { id: string }).id === 'c1'), 10_000, 'rollback refused, in the event stream');
      assert.equal((await statusOf(ok))?.status, 'active');
      // A rollback naming a version that does not serve (replayed, delayed): refused as a device refuses it.
      await dev.publishAsync(topics(PREFIX, ok).commands, JSON.stringify({ id: 'c2', command: 'rollback', args: { model: 'vad', version: 1 } }), { qos: 1 });
      const stale = await waitFor(async () => (await db.events(ok, 0, 10_000)).find((e) => e.type === 'command.failed' && (e.payload as { id: string }).id === 'c2'), 10_000, 'stale rollback refused');
      assert.equal((stale.payload as { code: string }).code, 'PERCH_ERR_ROLLBACK_STALE');

      // Events: stored once each, acked (nothing left awaiting on the devices).
      await waitFor(() => serve && serve.stats.eventsStored >= 4 * N, 20_000, 'ticks stored');
      const all = await Promise.all(ids.map((id) => db.events(id, 0, 100_000)));
      for (const evs of all) {
        const seqs = evs.map((e) => e.seq);
        assert.deepEqual(seqs, Array.from({ length: seqs.length }, (_, i) => i + 1), 'contiguous seqs from 1, none twice');
      }
    } finally {
      await db.close();
    }
    sim.proc.kill('SIGTERM');
    await sim.exited;
    const last = sim.logLines().find((l) => l.msg === 'simulate stopped');
    assert.ok(last, sim.stdout.slice(-1000));
    assert.equal(last.connectErrors, 0);
    assert.equal(last.connects, N);
    assert.ok(Number(last.acksReceived) > 0);
  });
});
