// Live config: validated whole by the same schema, applied without restart, persisted.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { httpInfer, waitFor } from '../helpers/clients.js';
import { clsInput } from '../helpers/models.js';
import { MODEL_FILES } from '../helpers/paths.js';
import { TempRepository } from '../helpers/repository.js';
import { startRuntime } from '../helpers/runtime.js';
import { storedEvents } from '../helpers/outbox-events.js';

test('live config: applied whole or not at all, takes effect on running models, survives a restart', async () => {
  const repo = new TempRepository({ cls: { versions: { 1: MODEL_FILES.ocrCls } } });
  const dataDir = mkdtempSync(join(tmpdir(), 'perch-data-'));
  let rt = await startRuntime(repo.dir, { dataDir });
  try {
    const bad = rt.runtime.applyLiveConfig({ log: { level: 'debug' }, cloud: { upload: { batchSize: 0 } } });
    assert.equal(bad.ok, false);
    assert.ok(!bad.ok && bad.error.code === 'PERCH_ERR_LIVE_CONFIG_INVALID' && bad.error.message.includes('cloud.upload.batchSize'));
    assert.equal(rt.runtime.liveConfig.log.level, 'silent', 'nothing of a refused document is applied');
    const restartOnly = rt.runtime.applyLiveConfig({ server: { port: 1 } });
    assert.ok(!restartOnly.ok && restartOnly.error.message.includes('without restart'));

    // Turn the cache on for cls, live: the second identical request is now a hit.
    const ok = rt.runtime.applyLiveConfig({ log: { level: 'warn' }, models: { overrides: { cls: { cache: { enabled: true }, batching: { maxQueueSize: 7 } } } }, cloud: { upload: { batchSize: 25 } } });
    assert.ok(ok.ok);
    assert.equal(rt.runtime.log.level, 'warn');
    assert.equal(rt.runtime.registry.resolve('cls').config.batching.maxQueueSize, 7);
    await httpInfer(rt.baseUrl, 'cls', clsInput(5));
    const hit = await httpInfer(rt.baseUrl, 'cls', clsInput(5));
    assert.equal((hit.body.parameters as { cached: boolean }).cached, true);
    assert.equal((await storedEvents(rt.runtime.store.outbox, 'config.applied')).length, 1);

    await rt.stop();
    rt = await startRuntime(repo.dir, { dataDir });
    assert.equal(rt.runtime.liveConfig.cloud.upload.batchSize, 25, 'persisted across a restart');
    assert.equal(rt.runtime.registry.resolve('cls').config.batching.maxQueueSize, 7, 'overrides apply at load');
  } finally {
    await rt.stop();
    repo.remove();
    rmSync(dataDir, { recursive: true, force: true });
  }
});

test('live config: config.applied is recorded only when the applied settings change', async () => {
  const repo = new TempRepository({ cls: { versions: { 1: MODEL_FILES.ocrCls } } });
  const rt = await startRuntime(repo.dir);
  const applied = async (): Promise<Array<{ cloud: { upload: { batchSize: number } } }>> =>
    (await storedEvents(rt.runtime.store.outbox, 'config.applied')).map((e) => e.payload as { cloud: { upload: { batchSize: number } } });
  try {
    const doc = { log: { level: 'warn' }, models: { overrides: { cls: { batching: { maxQueueDelayMs: 2 } } } } };
    assert.ok(rt.runtime.applyLiveConfig(doc).ok);
    // The fleet tool sends the whole config again with every desired document.
    assert.ok(rt.runtime.applyLiveConfig(doc).ok);
    assert.ok(rt.runtime.applyLiveConfig({ log: { level: 'warn' } }).ok, 'a part that changes nothing is still valid');
    assert.ok(rt.runtime.applyLiveConfig({ cloud: { upload: { batchSize: 7 } } }).ok);
    // Events are appended in the order they are recorded: once the last change is in, so is
    // anything the repeats before it recorded.
    await waitFor(async () => (await applied()).some((p) => p.cloud.upload.batchSize === 7), 10_000, 'the config.applied of the last change');
    assert.deepEqual((await applied()).map((p) => p.cloud.upload.batchSize), [100, 7], 'one event per change, none for the repeats');
  } finally {
    await rt.stop();
    repo.remove();
  }
});
