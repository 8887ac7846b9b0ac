// The rollout methods of the fleet store contract (rollout-store.ts), part of store-suite.ts:
// leases taken atomically by one worker at a time, renewed by their owner, taken over once
// expired; saves guarded by the revision; pause/resume/abort transitions; paused and settled
// rollouts not claimed.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { FleetStore } from '../../cloud-sync/fleet/store/fleet-store.js';
import type { RolloutDevice, RolloutRecord } from '../../cloud-sync/fleet/store/rollout-store.js';

function rollout(over: Partial<RolloutRecord> = {}): RolloutRecord {
  return {
    id: 'ro-1', model: 'vad', version: 2, spec: { version: 2, sha256: 'b'.repeat(64), size: 10, chunkSize: 10 }, target: '--all',
    waves: [{ size: 1, state: 'pending' }], bakeMs: 0, maxFailuresPercent: 0,
    healthErrorRate: null, healthP99Ms: null, state: 'running', reason: null, settled: false, createdAt: 0, updatedAt: 0, revision: 1, ...over,
  };
}

function device(deviceId: string, wave: number, over: Partial<RolloutDevice> = {}): RolloutDevice {
  return {
    deviceId, wave, status: 'pending', version: null, error: null, previousSpec: null, previousActive: null,
    desiredVersion: null, activeSince: null, passed: false, rollback: 'none', ...over,
  };
}

export function rolloutStoreSuite(withStore: <T>(fn: (db: FleetStore, open: () => Promise<FleetStore>) => Promise<T>) => Promise<T>): void {
  test('rollouts: one lease holder at a time, saves from a stale copy refused, paused and settled rollouts not claimed', () =>
    withStore(async (db1, open) => {
      const db2 = await open();
      try {
        await db1.rollouts.createRollout(rollout(), [device('a', 0)]);
        assert.deepEqual(await db1.rollouts.claimRollouts('w1', 1000, 5000), ['ro-1']);
        assert.deepEqual(await db2.rollouts.claimRollouts('w2', 2000, 5000), []);
        // w1 renews; w2 gets it only once the lease expired.
        assert.deepEqual(await db1.rollouts.claimRollouts('w1', 3000, 5000), ['ro-1']);
        assert.deepEqual(await db2.rollouts.claimRollouts('w2', 7999, 5000), []);
        assert.deepEqual(await db2.rollouts.claimRollouts('w2', 8000, 5000), ['ro-1']);
        assert.deepEqual(await db1.rollouts.claimRollouts('w1', 8001, 5000), []);

        const stale = (await db1.rollouts.rollout('ro-1')) as RolloutRecord;
        const paused = await db2.rollouts.setRolloutState('ro-1', 'paused', ['running'], null, 9000);
        assert.equal(paused?.changed, true);
        assert.equal(await db1.rollouts.saveRollout({ ...stale, reason: 'stale' }, [device('a', 0, { status: 'updating' })]), null);
        assert.equal((await db1.rollouts.rolloutDevices('ro-1'))[0]?.status, 'pending');
        assert.equal((await db1.rollouts.rollout('ro-1'))?.state, 'paused');
        await db2.rollouts.releaseRollout('ro-1', 'w2');
        assert.deepEqual(await db1.rollouts.claimRollouts('w1', 9000, 5000), []);
        const resumed = await db1.rollouts.setRolloutState('ro-1', 'running', ['paused'], null, 9100);
        assert.equal(resumed?.rollout.state, 'running');
        assert.equal((await db1.rollouts.setRolloutState('ro-1', 'running', ['paused'], null, 9200))?.changed, false);
        const fresh = (await db1.rollouts.rollout('ro-1')) as RolloutRecord;
        assert.equal(typeof (await db1.rollouts.saveRollout({ ...fresh, state: 'completed', settled: true }, [])), 'number');
        assert.deepEqual(await db1.rollouts.claimRollouts('w1', 99_999, 5000), []);
        assert.equal(await db1.rollouts.setRolloutState('nope', 'paused', ['running'], null, 0), undefined);
      } finally {
        await db2.close();
      }
    }));

  test('rollouts: read back as stored, newest first', () =>
    withStore(async (db) => {
      await db.rollouts.createRollout(rollout({ id: 'ro-a', createdAt: 1 }), [device('b', 0), device('a', 0, { previousSpec: { version: 1, sha256: 'a'.repeat(64), size: 1, chunkSize: 1 } })]);
      await db.rollouts.createRollout(rollout({ id: 'ro-b', createdAt: 2 }), []);
      assert.deepEqual((await db.rollouts.list()).map((r) => r.id), ['ro-b', 'ro-a']);
      assert.deepEqual(await db.rollouts.rollout('ro-a'), rollout({ id: 'ro-a', createdAt: 1 }));
      assert.deepEqual((await db.rollouts.rolloutDevices('ro-a')).map((d) => d.deviceId), ['a', 'b']);
      assert.equal((await db.rollouts.rolloutDevices('ro-a'))[0]?.previousSpec?.version, 1);
      assert.equal(await db.rollouts.rollout('nope'), undefined);
    }));
}
