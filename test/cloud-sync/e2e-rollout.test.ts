// Rollouts end to end with real processes (docs/fleet.md "Rollouts"): three `perch serve`
// devices with labels, a real `perch fleet serve` driving the rollouts, a real Mosquitto.
// A good model in waves 1,100% reaches all three; a correctly signed model that fails to load
// aborts after the first wave (the other two never get it, the first serves its previous
// version again); pause holds a rollout while another one completes, resume finishes it; serve
// SIGKILLed mid-rollout and restarted goes on where it stood.
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fleet, spawnFleet } from '../fleet/harness.js';
import { SqliteFleetStore } from '../../cloud-sync/fleet/store/sqlite-store.js';
import { startMosquitto, type Mosquitto } from '../helpers/mosquitto.js';
import { MODEL_FILES } from '../helpers/paths.js';
import { servePerch, writeDeviceConfig } from '../helpers/perch-process.js';
import { shippedModelConfig, TempRepository } from '../helpers/repository.js';
import type { Child } from '../helpers/wire.js';
import { readReported, readRetained, waitFor } from './helpers/mqtt-client.js';

interface RolloutStatus {
  id: string;
  state: string;
  model: string;
  version: number;
  waves: Array<{ size: number; state: string }>;
  devices: Record<string, { status: string; version: number | null; error?: string }>;
}

let broker: Mosquitto;
const temp: string[] = [];
const children: Child[] = [];
const repos: TempRepository[] = [];
const tempDir = (p: string): string => {
  const d = mkdtempSync(join(tmpdir(), p));
  temp.push(d);
  return d;
};
const run = randomUUID().slice(0, 6);
// Sorted ids: the first wave (one device) is ids[0].
const ids = ['a', 'b', 'c'].map((x) => `ro-${run}-${x}`);
const devices: Array<{ child: Child; baseUrl: string }> = [];
let store: string;
let keys: string;
let serve: Child;

function startServe(): Child {
  const c = spawnFleet(['serve', '--url', broker.url, '--store', store, '--client-id', `fleet-${run}`, '--progress-ms', '0', '--rollout-tick-ms', '100']);
  children.push(c);
  return c;
}

async function status(id: string): Promise<RolloutStatus> {
  const r = await fleet(['rollout', 'status', id, '--json', '--store', store]);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as RolloutStatus;
}

async function start(args: string[]): Promise<string> {
  const r = await fleet(['rollout', 'start', '--store', store, '--sign-key', join(keys, 'signing-key.pem'), ...args]);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout.trim();
}

async function activeVersion(deviceId: string, model: string): Promise<number | null> {
  const rep = (await readReported(broker.url, deviceId)) as { models?: Record<string, { version: number; status: string }> } | null;
  const m = rep?.models?.[model];
  return m?.status === 'active' ? m.version : null;
}

before(async () => {
  broker = await startMosquitto();
  store = tempDir('perch-rollout-fleet-');
  keys = join(tempDir('perch-rollout-keys-'), 'keys');
  assert.equal((await fleet(['keygen', '--out', keys])).code, 0);
  serve = startServe();
  await waitFor(() => !serve.running || serve.logLines().some((l) => l.msg === 'fleet serve ready'), 15_000, 'fleet serve ready');
  for (const [i, deviceId] of ids.entries()) {
    const repo = new TempRepository({ 'silero-vad': { versions: { 1: MODEL_FILES.sileroVad16k }, config: shippedModelConfig('silero-vad') } });
    repos.push(repo);
    const dataDir = tempDir('perch-rollout-dev-');
    const configFile = writeDeviceConfig({
      deviceId, dataDir, repository: repo.dir, mqttUrl: broker.url,
      cloud: { trustedKeysFile: join(keys, 'signing-key.pub.pem'), health: { windowMs: 10_000, reportMs: 200 } },
    });
    // device.labels: all three in the lab, one of them on other hardware.
    const cfg = JSON.parse(readFileSync(configFile, 'utf8')) as Record<string, Record<string, unknown>>;
    (cfg.device as Record<string, unknown>).labels = { site: 'lab', hw: i === 2 ? 'pi5' : 'pi4' };
    writeFileSync(configFile, JSON.stringify(cfg));
    const d = await servePerch(configFile, children);
    devices.push({ child: d.child, baseUrl: d.baseUrl });
  }
  // serve has recorded all three, with their labels (what --select resolves against).
  await waitFor(async () => {
    const db = new SqliteFleetStore(join(store, 'fleet.db'));
    try {
      for (const id of ids) if (((await db.device(id))?.status as { labels?: { site?: string } } | null)?.labels?.site !== 'lab') return false;
      return true;
    } finally {
      await db.close();
    }
  }, 20_000, 'serve knows the three devices and their labels');
});

after(async () => {
  for (const c of children) await c.kill();
  await broker.close();
  for (const r of repos) r.remove();
  for (const d of temp) rmSync(d, { recursive: true, force: true });
});

test('a good model in waves 1,100% reaches all three devices', async () => {
  const id = await start(['--model', 'silero-vad', '--version', '2', '--file', MODEL_FILES.sileroVad, '--select', 'site=lab', '--waves', '1,100%', '--bake', '0', '--max-failures', '0']);
  const done = await waitFor(async () => {
    const s = await status(id);
    return s.state === 'completed' || s.state === 'aborted' ? s : null;
  }, 60_000, 'rollout finished');
  assert.equal(done.state, 'completed', JSON.stringify(done));
  assert.deepEqual(done.waves, [{ size: 1, state: 'passed' }, { size: 2, state: 'passed' }]);
  assert.deepEqual(Object.keys(done.devices).sort(), ids);
  for (const d of Object.values(done.devices)) assert.deepEqual(d, { status: 'active', version: 2 });
  for (const deviceId of ids) await waitFor(async () => (await activeVersion(deviceId, 'silero-vad')) === 2, 10_000, `${deviceId} reports v2`);
  // The device reports labels and in-service health in state/reported too.
  const rep = (await readReported(broker.url, ids[2] as string)) as { labels?: Record<string, string> };
  assert.deepEqual(rep.labels, { site: 'lab', hw: 'pi5' });
  // --select resolves against labels: hw=pi5 is the third device only; nothing matches hw=x86.
  const none = await fleet(['rollout', 'start', '--store', store, '--model', 'silero-vad', '--version', '9', '--file', MODEL_FILES.sileroVad, '--select', 'hw=x86', '--waves', '100%', '--bake', '0', '--max-failures', '0']);
  assert.equal(none.code, 1);
  assert.match(none.stderr, /PERCH_ERR_NO_DEVICES_SELECTED/);
});

test('a signed model that fails to load aborts after the first wave and rolls the first device back', async () => {
  const broken = join(tempDir('perch-rollout-broken-'), 'model.onnx');
  writeFileSync(broken, randomBytes(4096));
  const id = await start(['--model', 'silero-vad', '--version', '3', '--file', broken, '--all', '--waves', '1,100%', '--bake', '0', '--max-failures', '0']);
  const done = await waitFor(async () => {
    const s = await status(id);
    return s.state === 'aborted' && s.devices[ids[0] as string]?.status === 'rolled-back' ? s : null;
  }, 60_000, 'rollout aborted and the first device rolled back');
  assert.deepEqual(done.waves, [{ size: 1, state: 'aborted' }, { size: 2, state: 'aborted' }]);
  assert.equal(done.devices[ids[0] as string]?.version, 2);
  assert.match(done.devices[ids[0] as string]?.error ?? '', /^PERCH_ERR_MODEL_LOAD_FAILED/);
  for (const other of ids.slice(1)) {
    assert.deepEqual(done.devices[other], { status: 'pending', version: null });
    // Never offered: its desired state does not name version 3, nor does its reported state.
    const desired = (await readRetained(broker.url, `perch/v1/devices/${other}/state/desired`)) as { models: Record<string, { version: number }> };
    assert.equal(desired.models['silero-vad']?.version, 2);
    const rep = (await readReported(broker.url, other)) as { models: Record<string, { version: number; status: string }> };
    assert.equal(rep.models['silero-vad']?.version, 2);
    assert.equal(rep.models['silero-vad']?.status, 'active');
  }
  // The first device is back on version 2 and serving it.
  const first = devices[0] as { baseUrl: string };
  await waitFor(async () => (await activeVersion(ids[0] as string, 'silero-vad')) === 2, 10_000, 'first device reports v2 active');
  const ready = await fetch(`${first.baseUrl}/v2/models/silero-vad/versions/2/ready`);
  assert.equal(ready.status, 200);
  const infer = await fetch(`${first.baseUrl}/v2/models/silero-vad/infer`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      inputs: [
        { name: 'input', shape: [1, 576], datatype: 'FP32', data: new Array(576).fill(0) },
        { name: 'sr', shape: [], datatype: 'INT64', data: [16000] },
      ],
      parameters: { sequence_id: 'rollout-check', sequence_start: true, sequence_end: true },
    }),
  });
  const answer = (await infer.json()) as { model_version?: string };
  assert.equal(infer.status, 200, JSON.stringify(answer));
  assert.equal(answer.model_version, '2');
});

test('pause holds a rollout (another one completes meanwhile); resume finishes it', async () => {
  const id = await start(['--model', 'silero-vad', '--version', '4', '--file', MODEL_FILES.sileroVad, '--all', '--waves', '1,100%', '--bake', '0', '--max-failures', '0']);
  assert.equal((await fleet(['rollout', 'pause', id, '--store', store])).code, 0);
  // Pausing again is fine; resuming a completed rollout is not (checked below).
  assert.equal((await fleet(['rollout', 'pause', id, '--store', store])).code, 0);
  // Another rollout (a new model on the hw=pi4 devices) runs to completion while this one is paused:
  // many controller ticks pass, none of which moves the paused one.
  const other = await start(['--model', 'vad-extra', '--version', '1', '--file', MODEL_FILES.sileroVad16k, '--select', 'hw=pi4', '--waves', '100%', '--bake', '0', '--max-failures', '0']);
  const otherDone = await waitFor(async () => {
    const s = await status(other);
    return s.state === 'completed' || s.state === 'aborted' ? s : null;
  }, 60_000, 'the other rollout finished');
  assert.equal(otherDone.state, 'completed', JSON.stringify(otherDone));
  assert.deepEqual(Object.keys(otherDone.devices).sort(), ids.slice(0, 2));
  const paused = await status(id);
  assert.equal(paused.state, 'paused');
  assert.equal(paused.waves[1]?.state, 'pending');
  for (const other2 of ids.slice(1)) assert.equal(paused.devices[other2]?.status, 'pending');

  assert.equal((await fleet(['rollout', 'resume', id, '--store', store])).code, 0);
  const done = await waitFor(async () => {
    const s = await status(id);
    return s.state === 'completed' || s.state === 'aborted' ? s : null;
  }, 60_000, 'rollout finished after resume');
  assert.equal(done.state, 'completed', JSON.stringify(done));
  for (const deviceId of ids) assert.deepEqual(done.devices[deviceId], { status: 'active', version: 4 });
  const late = await fleet(['rollout', 'pause', id, '--store', store]);
  assert.equal(late.code, 1);
  assert.match(late.stderr, /PERCH_ERR_ROLLOUT_STATE/);
  const list = await fleet(['rollout', 'list', '--json', '--store', store]);
  assert.ok((JSON.parse(list.stdout) as Array<{ id: string }>).some((r) => r.id === id));
});

test('fleet serve SIGKILLed mid-rollout and restarted goes on where it stood', async () => {
  const id = await start(['--model', 'silero-vad', '--version', '5', '--file', MODEL_FILES.sileroVad, '--all', '--waves', '1,100%', '--bake', '3s', '--max-failures', '0']);
  // The first device is on it and baking: the rollout stands in wave 1.
  const mid = await waitFor(async () => {
    const s = await status(id);
    return s.devices[ids[0] as string]?.status === 'active' ? s : null;
  }, 60_000, 'first device active');
  assert.equal(mid.waves[0]?.state, 'running');
  const before = new SqliteFleetStore(join(store, 'fleet.db'));
  const publishedBefore = (await before.rollouts.rolloutDevices(id)).find((d) => d.deviceId === ids[0])?.desiredVersion;
  await before.close();
  await serve.kill();
  serve = startServe();
  const done = await waitFor(async () => {
    const s = await status(id);
    return s.state === 'completed' || s.state === 'aborted' ? s : null;
  }, 60_000, 'rollout finished after the restart');
  assert.equal(done.state, 'completed', JSON.stringify(done));
  for (const deviceId of ids) assert.deepEqual(done.devices[deviceId], { status: 'active', version: 5 });
  // The first device got its desired document once: the restarted serve did not start over.
  const after = new SqliteFleetStore(join(store, 'fleet.db'));
  const rec = (await after.rollouts.rolloutDevices(id)).find((d) => d.deviceId === ids[0]);
  const stored = await after.desired(ids[0] as string);
  await after.close();
  assert.equal(rec?.desiredVersion, publishedBefore);
  assert.equal(stored?.version, publishedBefore);
  // The restarted serve says it completed it (its log lines may come a moment after the store's state).
  await waitFor(() => serve.logLines().some((l) => l.msg === 'rollout state' && l.rollout === id && l.state === 'completed'), 10_000, 'the restarted serve logs the completion');
});
