// models.overrides change only the keys they name: the rest keeps what model.json says, from
// the config file and from live config alike (docs/config.md, models.overrides).
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { loadConfig } from '../../runtime/config/load.js';
import { MODEL_FILES } from '../helpers/paths.js';
import { TempRepository } from '../helpers/repository.js';
import { startRuntime } from '../helpers/runtime.js';

const MODEL_JSON = { batching: { maxQueueDelayMs: 1, preferredBatchSizes: [16, 32, 64], maxQueueSize: 2048 }, cache: { enabled: true, ttlSeconds: 60 } };

test('a config file override holds only the keys it names', () => {
  const dir = mkdtempSync(join(tmpdir(), 'perch-cfg-'));
  try {
    const file = join(dir, 'perch.json');
    writeFileSync(file, JSON.stringify({ models: { overrides: { cls: { batching: { maxQueueDelayMs: 5 } } } } }));
    const c = loadConfig({ configPath: file, env: {} });
    assert.deepEqual(c.models.overrides, { cls: { batching: { maxQueueDelayMs: 5 } } }, 'no schema default is filled into an override');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a one-key override keeps the other batching and cache keys of model.json, at start-up and live', async () => {
  const repo = new TempRepository({ cls: { versions: { 1: MODEL_FILES.ocrCls }, config: MODEL_JSON } });
  const rt = await startRuntime(repo.dir, { models: { overrides: { cls: { batching: { maxQueueDelayMs: 5 } } } } });
  try {
    const atStart = rt.runtime.registry.resolve('cls').config;
    assert.equal(atStart.batching.maxQueueDelayMs, 5);
    assert.deepEqual(atStart.batching.preferredBatchSizes, [16, 32, 64]);
    assert.equal(atStart.batching.maxQueueSize, 2048);
    assert.deepEqual(atStart.cache, { enabled: true, ttlSeconds: 60 });

    const r = rt.runtime.applyLiveConfig({ models: { overrides: { cls: { batching: { maxQueueDelayMs: 3 } } } } });
    assert.ok(r.ok);
    assert.deepEqual(rt.runtime.liveConfig.models.overrides, { cls: { batching: { maxQueueDelayMs: 3 } } });
    const live = rt.runtime.registry.resolve('cls').config;
    assert.equal(live.batching.maxQueueDelayMs, 3);
    assert.deepEqual(live.batching.preferredBatchSizes, [16, 32, 64]);
    assert.equal(live.batching.maxQueueSize, 2048);
    assert.deepEqual(live.cache, { enabled: true, ttlSeconds: 60 });

    const cacheOnly = rt.runtime.applyLiveConfig({ models: { overrides: { cls: { cache: { enabled: false } } } } });
    assert.ok(cacheOnly.ok);
    const after = rt.runtime.registry.resolve('cls').config;
    assert.deepEqual(after.cache, { enabled: false, ttlSeconds: 60 });
    assert.equal(after.batching.maxQueueDelayMs, 1, 'a model\'s override replaced whole takes its old keys back off');
  } finally {
    await rt.stop();
    repo.remove();
  }
});
