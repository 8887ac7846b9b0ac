// The agent's own namespace of the state store (runtime/port/state-namespace.ts, create-port.ts):
// its keys cannot reach the runtime's, and a device upgraded in place from the version that kept
// desired and reported state under top-level keys keeps them, with its model status and download
// progress. Real SQLite files; the agent is built but not connected (what it read is in reported()).
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'node:test';
import { createCloudAgent } from '../../cloud-sync/agent/index.js';
import { AGENT_KEYS } from '../../cloud-sync/agent/state-keys.js';
import { silentLogger } from '../../runtime/base/log.js';
import { agentState } from '../../runtime/port/create-port.js';
import { STATE_KEYS } from '../../runtime/store/state-store.js';
import { openStore } from '../../runtime/store/store.js';
import { makePort } from './helpers/port.js';

// Never dialled: the agent is not started.
const MQTT_URL = 'mqtt://127.0.0.1:1';

function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'perch-agent-state-'));
}

test('agent state: its keys live under its namespace; the runtime keys are out of its sight and reach', async () => {
  const dataDir = tempDir();
  const store = openStore({ dataDir });
  try {
    store.state.set(STATE_KEYS.liveConfig, { log: { level: 'warn' } });
    const state = agentState(store.state, silentLogger());
    state.set(AGENT_KEYS.desired, { version: 1 });
    state.set('config.live', { mine: true });
    assert.deepEqual(state.keys(), ['config.live', 'desired']);
    assert.deepEqual(state.get('config.live'), { mine: true });
    // The runtime's document is untouched; the agent's are stored under `cloud.`.
    assert.deepEqual(store.state.get(STATE_KEYS.liveConfig), { log: { level: 'warn' } });
    assert.deepEqual(store.state.keys(), ['cloud.config.live', 'cloud.desired', 'config.live']);
    assert.equal(state.delete('config.live'), true);
    assert.deepEqual(store.state.get(STATE_KEYS.liveConfig), { log: { level: 'warn' } });
  } finally {
    await store.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
});

test('agent state: a device upgraded in place keeps its desired, reported, model status and download progress', async () => {
  const dataDir = tempDir();
  const desired = {
    version: 7,
    doc: { version: 7, models: {}, config: { cloud: { upload: { batchSize: 9 } } } },
    configDone: true,
    configError: { code: 'PERCH_ERR_CONFIG_INVALID', message: 'log.level: bad' },
    ignored: null,
  };
  const reported = { desiredVersion: 7, models: {}, config: {}, ts: 1, outbox: { count: 0, bytes: 0, oldestAgeMs: 0 } };
  const failed = { version: 4, sha256: 'b'.repeat(64), status: 'failed', error: { code: 'PERCH_ERR_MODEL_DIGEST_MISMATCH', message: 'digest' } };
  const progress = { version: 5, sha256: 'c'.repeat(64), size: 10, chunkSize: 4, total: 3, staged: 2, requested: 3 };
  // What the previous version left: desired and reported under top-level keys, the rest under cloud.
  const old = openStore({ dataDir });
  old.state.set('shadow.desired', desired);
  old.state.set('shadow.reported', reported);
  old.state.set('cloud.models.status', { ocr: failed });
  old.state.set('cloud.download.vad', progress);
  await old.close();

  const t = makePort({ mqttUrl: MQTT_URL, dataDir });
  try {
    assert.deepEqual(t.port.state.get(AGENT_KEYS.desired), desired);
    assert.deepEqual(t.port.state.get(AGENT_KEYS.reported), reported);
    assert.deepEqual(t.port.state.get(AGENT_KEYS.download('vad')), progress);
    assert.deepEqual(t.store.state.keys(), ['cloud.desired', 'cloud.download.vad', 'cloud.models.status', 'cloud.reported']);
    // The agent reads them as before the upgrade: what it applied and what failed.
    const doc = createCloudAgent(t.port).reported() as { desiredVersion: number; models: Record<string, unknown>; configError?: unknown };
    assert.equal(doc.desiredVersion, 7);
    assert.deepEqual(doc.configError, desired.configError);
    assert.deepEqual(doc.models.ocr, { ...failed, active: null });
  } finally {
    await t.close(true);
  }
});

test('agent state: a move cut short (new key written, old not yet deleted) keeps the new document', async () => {
  const dataDir = tempDir();
  const store = openStore({ dataDir });
  try {
    store.state.set('shadow.desired', { version: 3 });
    store.state.set('cloud.desired', { version: 4 });
    const state = agentState(store.state, silentLogger());
    assert.deepEqual(state.get(AGENT_KEYS.desired), { version: 4 });
    assert.deepEqual(store.state.keys(), ['cloud.desired']);
  } finally {
    await store.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
});
