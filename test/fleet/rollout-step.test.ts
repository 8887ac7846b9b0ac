// The rollout's decisions (rollout/step.ts) on given device reports and times: offline devices
// stay pending, bake time counts from the first active report, health over the thresholds
// fails a device, failures above --max-failures abort and roll back only the devices reached.
// The store's guards (lease, revision) are in the store suite (store-suite-rollouts.ts).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ReportedState } from '../../cloud-sync/protocol/schemas.js';
import { devicesInPlay, MAX_DEVICE_ERROR, ROLLBACK_RETRY_MS, stepRollout, type DeviceView } from '../../cloud-sync/fleet/rollout/step.js';
import type { RolloutDevice, RolloutRecord } from '../../cloud-sync/fleet/store/rollout-store.js';

const SHA_NEW = 'b'.repeat(64);
const SHA_OLD = 'a'.repeat(64);

function rollout(over: Partial<RolloutRecord> = {}): RolloutRecord {
  return {
    id: 'ro-1', model: 'vad', version: 2, spec: { version: 2, sha256: SHA_NEW, size: 10, chunkSize: 10 }, target: '--all',
    waves: [{ size: 1, state: 'pending' }, { size: 2, state: 'pending' }], bakeMs: 1000, maxFailuresPercent: 0,
    healthErrorRate: 0.05, healthP99Ms: 100, state: 'running', reason: null, settled: false, createdAt: 0, updatedAt: 0, revision: 1, ...over,
  };
}

function device(deviceId: string, wave: number, over: Partial<RolloutDevice> = {}): RolloutDevice {
  return {
    deviceId, wave, status: 'pending', version: null, error: null, previousSpec: null, previousActive: null,
    desiredVersion: null, activeSince: null, passed: false, rollback: 'none', ...over,
  };
}

function view(online: boolean, model?: ReportedState['models'][string], extra: Partial<ReportedState> = {}): DeviceView {
  return { online, reported: { desiredVersion: 1, models: model ? { vad: model } : {}, config: {}, ts: 0, ...extra } };
}

const onOld = { version: 1, sha256: SHA_OLD, status: 'active' as const };
const onNew = { version: 2, sha256: SHA_NEW, status: 'active' as const };

test('wave 1 goes to the online device; an offline one stays pending; bake counts from active', () => {
  const devices = [device('a', 0), device('b', 1), device('c', 1)];
  let s = stepRollout(rollout(), devices, new Map([['a', view(true, onOld)], ['b', view(false, onOld)], ['c', view(true, onOld)]]), 10_000);
  assert.deepEqual(s.actions, [{ kind: 'update', deviceId: 'a', previousActive: { version: 1, sha256: SHA_OLD } }]);
  assert.equal(s.rollout.waves[0]?.state, 'running');
  // The controller published: a is updating with desired version 5.
  const a = { ...device('a', 0), status: 'updating' as const, desiredVersion: 5, previousActive: { version: 1, sha256: SHA_OLD } };
  s = stepRollout(s.rollout, [a, devices[1] as RolloutDevice, devices[2] as RolloutDevice], new Map([['a', view(true, onNew)]]), 20_000);
  assert.equal(s.changed.get('a')?.status, 'active');
  assert.equal(s.changed.get('a')?.activeSince, 20_000);
  assert.equal(s.changed.get('a')?.passed, false);
  assert.deepEqual(s.actions, []);
  const baking = s.changed.get('a') as RolloutDevice;
  // 999 ms later still baking; at 1000 ms it passes and wave 2 starts with the online device only.
  s = stepRollout(s.rollout, [baking, devices[1] as RolloutDevice, devices[2] as RolloutDevice], new Map([['a', view(true, onNew)], ['b', view(false, onOld)], ['c', view(true, onOld)]]), 20_999);
  assert.equal(s.changed.size, 0);
  s = stepRollout(s.rollout, [baking, devices[1] as RolloutDevice, devices[2] as RolloutDevice], new Map([['a', view(true, onNew)], ['b', view(false, onOld)], ['c', view(true, onOld)]]), 21_000);
  assert.equal(s.changed.get('a')?.passed, true);
  assert.deepEqual(s.rollout.waves.map((w) => w.state), ['passed', 'running']);
  assert.deepEqual(s.actions.map((x) => x.deviceId), ['c']);
  assert.equal(s.rollout.state, 'running');
});

test('health over a threshold fails the device; failures above --max-failures abort and roll back only the devices reached', () => {
  const r = rollout({ maxFailuresPercent: 0 });
  const a = device('a', 0, { status: 'active', version: 2, desiredVersion: 5, activeSince: 0, previousActive: { version: 1, sha256: SHA_OLD } });
  const sick = view(true, onNew, { health: { windowMs: 60_000, models: { vad: { '2': { requests: 100, errors: 9, errorRate: 0.09, p99Ms: 3 } } } } });
  let s = stepRollout(r, [a, device('b', 1), device('c', 1)], new Map([['a', sick], ['b', view(true, onOld)], ['c', view(true, onOld)]]), 500);
  assert.equal(s.changed.get('a')?.status, 'failed');
  assert.match(s.changed.get('a')?.error ?? '', /in-service error rate 0\.0900 over 0\.05/);
  assert.equal(s.rollout.state, 'aborted');
  assert.match(s.rollout.reason ?? '', /1 of 1 devices reached failed/);
  assert.deepEqual(s.rollout.waves.map((w) => w.state), ['aborted', 'aborted']);
  // a serves the new version: the rollback command; b and c were never reached: nothing.
  assert.deepEqual(s.actions, [{ kind: 'rollback-command', deviceId: 'a', attempt: 1 }]);
  assert.equal(s.rollout.settled, false);
  // Once a serves version 1 again its previous desired entry is restored, then it is rolled back.
  const sent = s.changed.get('a') as RolloutDevice;
  s = stepRollout(s.rollout, [sent, device('b', 1), device('c', 1)], new Map([['a', view(true, { ...onNew, status: 'failed', active: { version: 1, sha256: SHA_OLD } })]]), 600);
  assert.deepEqual(s.actions, [{ kind: 'restore', deviceId: 'a' }]);
  const restored = s.changed.get('a') as RolloutDevice;
  s = stepRollout(s.rollout, [restored, device('b', 1), device('c', 1)], new Map([['a', view(true, onOld)]]), 700);
  assert.equal(s.changed.get('a')?.status, 'rolled-back');
  assert.equal(s.changed.get('a')?.version, 1);
  assert.equal(s.rollout.settled, true);
});

test('a p99 over the threshold fails; a device failing to load is failed with its code', () => {
  const r = rollout({ maxFailuresPercent: 60, waves: [{ size: 3, state: 'running' }] });
  const slow = view(true, onNew, { health: { windowMs: 60_000, models: { vad: { '2': { requests: 10, errors: 0, errorRate: 0, p99Ms: 250 } } } } });
  const loadFailed = view(true, { version: 2, sha256: SHA_NEW, status: 'failed', error: { code: 'PERCH_ERR_MODEL_LOAD_FAILED', message: 'bad file' }, active: { version: 1, sha256: SHA_OLD } });
  const reached = (id: string): RolloutDevice => device(id, 0, { status: 'updating', desiredVersion: 3 });
  const s = stepRollout(r, [reached('a'), reached('b'), reached('c')], new Map([['a', slow], ['b', loadFailed], ['c', view(true, onOld)]]), 0);
  assert.match(s.changed.get('a')?.error ?? '', /p99 latency 250 ms over 100 ms/);
  assert.equal(s.changed.get('b')?.error, 'PERCH_ERR_MODEL_LOAD_FAILED: bad file');
  // 2 of 3 = 66.7 % > 60 %: aborted; b never served it, so its previous entry is restored at once.
  assert.equal(s.rollout.state, 'aborted');
  assert.deepEqual(s.actions.map((x) => `${x.kind} ${x.deviceId}`).sort(), ['restore b', 'restore c', 'rollback-command a']);
});

test("a device's error is kept to MAX_DEVICE_ERROR characters (its record is stored and logged)", () => {
  const r = rollout({ waves: [{ size: 1, state: 'running' }] });
  const huge = view(true, { version: 2, sha256: SHA_NEW, status: 'failed', error: { code: 'PERCH_ERR_MODEL_LOAD_FAILED', message: `${'x'.repeat(997)}\u{1f600}${'y'.repeat(900_000)}` } });
  const error = stepRollout(r, [device('a', 0, { status: 'updating', desiredVersion: 3 })], new Map([['a', huge]]), 0).changed.get('a')?.error ?? '';
  assert.ok(error.length <= MAX_DEVICE_ERROR, `${error.length} characters`);
  assert.ok(error.startsWith('PERCH_ERR_MODEL_LOAD_FAILED: xxx') && error.endsWith('…'));
  assert.doesNotMatch(error, /[\ud800-\udbff]…$/, 'never half a surrogate pair');
});

test('a rollback command with no effect is sent again every ROLLBACK_RETRY_MS until the device leaves the version', () => {
  const r = rollout({ state: 'aborted', reason: 'test', waves: [{ size: 1, state: 'aborted' }, { size: 2, state: 'aborted' }] });
  let a = device('a', 0, { status: 'active', version: 2, desiredVersion: 5, activeSince: 0, previousActive: { version: 1, sha256: SHA_OLD } });
  const onIt = new Map([['a', view(true, onNew)]]);
  let s = stepRollout(r, [a], onIt, 1000);
  assert.deepEqual(s.actions, [{ kind: 'rollback-command', deviceId: 'a', attempt: 1 }]);
  a = s.changed.get('a') as RolloutDevice;
  // The command was lost: the device still serves version 2. Nothing before the retry time...
  s = stepRollout(r, [a], onIt, 1000 + ROLLBACK_RETRY_MS - 1);
  assert.deepEqual(s.actions, []);
  // ...then again, counted.
  s = stepRollout(r, [a], onIt, 1000 + ROLLBACK_RETRY_MS);
  assert.deepEqual(s.actions, [{ kind: 'rollback-command', deviceId: 'a', attempt: 2 }]);
  a = s.changed.get('a') as RolloutDevice;
  assert.equal(a.rollbackAttempts, 2);
  // The second one worked: the previous entry is restored, then the device is rolled back.
  s = stepRollout(r, [a], new Map([['a', view(true, { ...onNew, status: 'failed', active: { version: 1, sha256: SHA_OLD } })]]), 1000 + ROLLBACK_RETRY_MS + 10);
  assert.deepEqual(s.actions, [{ kind: 'restore', deviceId: 'a' }]);
});

test('--offline-timeout: a device still offline that long after its wave started fails; without it, it stays pending', () => {
  const devices = [device('a', 0), device('b', 0)];
  const views = new Map([['a', view(true, onOld)], ['b', view(false, onOld)]]);
  const r = rollout({ waves: [{ size: 2, state: 'pending' }], offlineTimeoutMs: 60_000, maxFailuresPercent: 50 });
  let s = stepRollout(r, devices, views, 1000);
  assert.equal(s.rollout.waves[0]?.startedAt, 1000);
  assert.deepEqual(s.actions.map((x) => x.deviceId), ['a']);
  const rest = [{ ...device('a', 0), status: 'updating' as const, desiredVersion: 3 }, device('b', 0)];
  s = stepRollout(s.rollout, rest, views, 60_999);
  assert.equal(s.changed.get('b'), undefined);
  s = stepRollout(s.rollout, rest, views, 61_000);
  assert.equal(s.changed.get('b')?.status, 'failed');
  assert.match(s.changed.get('b')?.error ?? '', /offline for 60 s since its wave started \(--offline-timeout\)/);
  // Without the flag the same device stays pending, however long.
  const plain = stepRollout({ ...s.rollout, offlineTimeoutMs: null }, rest, views, 10_000_000);
  assert.equal(plain.changed.get('b'), undefined);
});

test('devicesInPlay: only the devices a step can use are read', () => {
  const r = rollout({ waves: [{ size: 1, state: 'passed' }, { size: 1, state: 'running' }, { size: 1, state: 'pending' }, { size: 1, state: 'pending' }] });
  const devices = [
    device('done', 0, { status: 'active', passed: true, desiredVersion: 3 }), device('baking', 1, { status: 'active', desiredVersion: 3 }),
    device('next', 2), device('later', 3),
  ];
  assert.deepEqual(devicesInPlay(r, devices), ['baking', 'next']);
  assert.deepEqual(devicesInPlay({ ...r, state: 'aborted' }, devices), ['done', 'baking']);
  assert.deepEqual(devicesInPlay({ ...r, state: 'paused' }, devices), []);
});
