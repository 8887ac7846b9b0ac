// The abstract state store suite (docs/design.md house style 5): every StateStore implementation runs it.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { STATE_KEYS, type StateStore } from '../../../runtime/store/state-store.js';

export interface StateStoreHarness {
  state: StateStore;
  reopen(): Promise<StateStore>;
  destroy(): Promise<void>;
}

export type StateStoreFactory = () => Promise<StateStoreHarness>;

async function withState(factory: StateStoreFactory, fn: (h: StateStoreHarness) => Promise<void> | void): Promise<void> {
  const h = await factory();
  try {
    await fn(h);
  } finally {
    await h.destroy();
  }
}

export function runStateStoreSuite(name: string, factory: StateStoreFactory): void {
  void describe(`StateStore: ${name}`, () => {
    void test('set then get round-trips JSON documents; unknown keys are undefined', () =>
      withState(factory, ({ state }) => {
        const desired = { models: { ocr: { version: 3, digest: 'sha256:ab' } }, config: { log: { level: 'debug' } }, n: null, list: [1, 'two', true] };
        state.set('shadow.desired', desired);
        state.set('models.versions', { ocr: 3 });
        state.set('plain', 'text');
        state.set('zero', 0);
        assert.deepEqual(state.get('shadow.desired'), desired);
        assert.deepEqual(state.get('models.versions'), { ocr: 3 });
        assert.equal(state.get('plain'), 'text');
        assert.equal(state.get('zero'), 0);
        assert.equal(state.get('missing'), undefined);
        assert.deepEqual(state.keys(), ['models.versions', 'plain', 'shadow.desired', 'zero']);
      }));

    void test('set overwrites, delete removes', () =>
      withState(factory, ({ state }) => {
        state.set('shadow.reported', { v: 1 });
        state.set('shadow.reported', { v: 2 });
        assert.deepEqual(state.get('shadow.reported'), { v: 2 });
        assert.equal(state.delete('shadow.reported'), true);
        assert.equal(state.delete('shadow.reported'), false);
        assert.equal(state.get('shadow.reported'), undefined);
      }));

    void test('documents survive a restart', () =>
      withState(factory, async (h) => {
        h.state.set(STATE_KEYS.liveConfig, { log: { level: 'warn' } });
        h.state.set('gone', 1);
        h.state.delete('gone');
        const state = await h.reopen();
        assert.deepEqual(state.get(STATE_KEYS.liveConfig), { log: { level: 'warn' } });
        assert.equal(state.get('gone'), undefined);
      }));

    void test('undefined is refused (delete is the way to remove a key)', () =>
      withState(factory, ({ state }) => {
        assert.throws(() => state.set('k', undefined), { code: 'PERCH_ERR_INTERNAL' });
      }));
  });
}
