// Installing model versions at run time (what a cloud update ends with): a good version swaps
// in; a broken one is refused with its step's code while the old version serves on, under load,
// with zero failed requests; rollback and remove.
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { createHash } from 'node:crypto';
import { WsClient } from '../helpers/clients.js';
import { clsInput } from '../helpers/models.js';
import { MODEL_FILES } from '../helpers/paths.js';
import { TempRepository } from '../helpers/repository.js';
import { mountSmallDisk } from '../helpers/small-disk.js';
import { startRuntime } from '../helpers/runtime.js';
import type { PerchError } from '../../runtime/base/errors.js';

const sha = (f: string) => createHash('sha256').update(readFileSync(f)).digest('hex');

test('install, refuse broken versions without a failed request, roll back, remove', async () => {
  const repo = new TempRepository({ cls: { versions: { 1: MODEL_FILES.ocrCls }, config: { maxBatchSize: 8 } } });
  const rt = await startRuntime(repo.dir);
  const ws = await WsClient.connect(rt.wsUrl);
  const tmp = mkdtempSync(join(tmpdir(), 'perch-install-'));
  let stop = false;
  const failures: string[] = [];
  const load = (async () => {
    while (!stop) {
      const a = await ws.infer('cls', clsInput(9), { binary: true });
      if (!a.ok) failures.push(JSON.stringify(a.body));
    }
  })();
  const installer = rt.runtime.installer;
  try {
    const v2 = await installer.install('cls', 2, MODEL_FILES.ocrCls);
    assert.deepEqual(v2, { name: 'cls', version: 2, sha256: sha(MODEL_FILES.ocrCls), previousVersion: 1 });

    const corrupt = join(tmp, 'corrupt.onnx');
    writeFileSync(corrupt, Buffer.alloc(4096, 7));
    await assert.rejects(installer.install('cls', 3, corrupt), (e: PerchError) => e.code === 'PERCH_ERR_MODEL_LOAD_FAILED');
    await assert.rejects(
      installer.install('cls', 3, MODEL_FILES.ocrCls, { inputs: [{ name: 'x', datatype: 'INT32', dims: [-1, 3, 48, 192] }] }),
      (e: PerchError) => e.code === 'PERCH_ERR_MODEL_CONFIG_MISMATCH',
    );
    await assert.rejects(installer.install('cls', 3, MODEL_FILES.ocrCls, { maxBatchSize: 'many' }), (e: PerchError) => e.code === 'PERCH_ERR_MODEL_CONFIG_INVALID');
    // A model that loads but whose warm-up run fails: Silero v6 throws on a sample rate other
    // than 8000/16000 (MANIFEST.md). A new model that never came up leaves nothing behind.
    await assert.rejects(
      installer.install('vad', 1, MODEL_FILES.sileroVad, { warmup: { inputs: { input: { shape: [1, 576] }, state: { shape: [2, 1, 128] }, sr: { data: [12345] } } } }),
      (e: PerchError) => e.code === 'PERCH_ERR_MODEL_WARMUP_FAILED',
    );
    assert.equal(rt.runtime.registry.has('vad'), false);
    assert.deepEqual(rt.runtime.registry.statusOf('cls').served, [2], 'version 2 serves on');
    assert.ok(rt.runtime.registry.isReady(), 'no failed version left behind');
    assert.deepEqual(JSON.parse(readFileSync(join(repo.dir, 'cls', 'model.json'), 'utf8')), { maxBatchSize: 8 }, 'model.json restored');
    assert.ok(!existsSync(join(repo.dir, 'cls', '3')));

    const back = await installer.rollback('cls');
    assert.equal(back.version, 1);
    assert.deepEqual(rt.runtime.registry.statusOf('cls').served, [1]);
    await assert.rejects(installer.rollback('cls'), (e: PerchError) => e.code === 'PERCH_ERR_NO_PREVIOUS_VERSION');
    stop = true;
    await load;
    assert.deepEqual(failures, []);
    await installer.remove('cls');
    assert.equal(rt.runtime.registry.has('cls'), false);
    assert.ok(!existsSync(join(repo.dir, 'cls')));
  } finally {
    stop = true;
    await load;
    await ws.close();
    await rt.stop();
    repo.remove();
    rmSync(tmp, { recursive: true, force: true });
  }
});

test('with {latest: 1}, a new version that fails to load leaves the old one serving', async () => {
  const repo = new TempRepository({ cls: { versions: { 1: MODEL_FILES.ocrCls } } });
  const rt = await startRuntime(repo.dir);
  try {
    repo.addVersion('cls', 2, Buffer.from('not an onnx file'));
    const res = await fetch(`${rt.baseUrl}/v2/repository/models/cls/load`, { method: 'POST' });
    assert.equal(res.status, 400);
    assert.equal(((await res.json()) as { code: string }).code, 'PERCH_ERR_MODEL_LOAD_FAILED');
    assert.deepEqual(rt.runtime.registry.statusOf('cls').served, [1]);
    assert.equal((await fetch(`${rt.baseUrl}/v2/models/cls/versions/1/ready`)).status, 200);
    assert.equal((await fetch(`${rt.baseUrl}/v2/models/cls/versions/2/ready`)).status, 503);
    const metrics = await (await fetch(`${rt.baseUrl}/metrics`)).text();
    assert.match(metrics, /^perch_model_ready\{model="cls",version="1"\} 1$/m);
    assert.match(metrics, /^perch_model_ready\{model="cls",version="2"\} 0$/m, 'a failed version shows as not ready');
  } finally {
    await rt.stop();
    repo.remove();
  }
});

test('a disk that fills during the install copy: refused, the partial copy removed, the old version serves on', async (t) => {
  const disk = mountSmallDisk(8 * 1024 * 1024);
  if (typeof disk === 'string') {
    t.skip(disk);
    return;
  }
  const repo = join(disk.dir, 'repo');
  mkdirSync(join(repo, 'cls', '1'), { recursive: true });
  copyFileSync(MODEL_FILES.ocrCls, join(repo, 'cls', '1', 'model.onnx'));
  const rt = await startRuntime(repo);
  try {
    disk.fill();
    await assert.rejects(rt.runtime.installer.install('cls', 2, MODEL_FILES.ocrCls), (e: NodeJS.ErrnoException) => e.code === 'ENOSPC');
    assert.deepEqual(readdirSync(join(repo, 'cls')), ['1'], 'no partial .staging-2 copy keeps the space');
    assert.deepEqual(rt.runtime.registry.statusOf('cls').served, [1]);
  } finally {
    await rt.stop();
    disk.unmount();
  }
});

test('a disk that fills between the copy and model.json: refused, the version taken out again, a restart serves the old pair', async (t) => {
  const disk = mountSmallDisk(8 * 1024 * 1024);
  if (typeof disk === 'string') {
    t.skip(disk);
    return;
  }
  const repo = join(disk.dir, 'repo');
  mkdirSync(join(repo, 'cls', '1'), { recursive: true });
  copyFileSync(MODEL_FILES.ocrCls, join(repo, 'cls', '1', 'model.onnx'));
  writeFileSync(join(repo, 'cls', 'model.json'), JSON.stringify({ maxBatchSize: 8 }));
  let rt = await startRuntime(repo);
  try {
    // Another writer takes the disk once version 2's folder is in place.
    rt.runtime.installer.hooks.step = (s) => {
      if (s === 'renamed') disk.fill();
    };
    await assert.rejects(rt.runtime.installer.install('cls', 2, MODEL_FILES.ocrCls, { maxBatchSize: 4 }), (e: NodeJS.ErrnoException) => e.code === 'ENOSPC');
    assert.deepEqual(readdirSync(join(repo, 'cls')).sort(), ['1', 'model.json'], 'version 2 taken out again');
    assert.deepEqual(rt.runtime.registry.statusOf('cls').served, [1]);
    assert.deepEqual(JSON.parse(readFileSync(join(repo, 'cls', 'model.json'), 'utf8')), { maxBatchSize: 8 });
    await rt.stop();
    disk.unfill();
    rt = await startRuntime(repo);
    assert.deepEqual(rt.runtime.registry.statusOf('cls').served, [1], 'a restart does not bring version 2 back');
    assert.equal(rt.runtime.registry.resolve('cls').config.maxBatchSize, 8);
  } finally {
    await rt.stop();
    disk.unmount();
  }
});

test('a disk that fills during a rollback before model.json is put back: refused, the current version back in place with its model.json', async (t) => {
  const disk = mountSmallDisk(8 * 1024 * 1024);
  if (typeof disk === 'string') {
    t.skip(disk);
    return;
  }
  const repo = join(disk.dir, 'repo');
  mkdirSync(join(repo, 'cls', '1'), { recursive: true });
  copyFileSync(MODEL_FILES.ocrCls, join(repo, 'cls', '1', 'model.onnx'));
  writeFileSync(join(repo, 'cls', 'model.json'), JSON.stringify({ maxBatchSize: 8 }));
  const rt = await startRuntime(repo);
  try {
    await rt.runtime.installer.install('cls', 2, MODEL_FILES.ocrCls, { maxBatchSize: 4 });
    rt.runtime.installer.hooks.step = (s) => {
      if (s === 'rollback-renamed') disk.fill();
    };
    await assert.rejects(rt.runtime.installer.rollback('cls'), (e: NodeJS.ErrnoException) => e.code === 'ENOSPC');
    assert.deepEqual(readdirSync(join(repo, 'cls')).sort(), ['1', '2', 'model.json']);
    assert.deepEqual(rt.runtime.registry.statusOf('cls').served, [2]);
    assert.deepEqual(JSON.parse(readFileSync(join(repo, 'cls', 'model.json'), 'utf8')), { maxBatchSize: 4 });
    disk.unfill();
    rt.runtime.installer.hooks.step = undefined;
    assert.equal((await rt.runtime.installer.rollback('cls')).version, 1, 'and rolls back once there is room');
    assert.equal(rt.runtime.registry.resolve('cls').config.maxBatchSize, 8);
  } finally {
    await rt.stop();
    disk.unmount();
  }
});

test('the same version number again with a file or model.json that does not load: refused, the old one and its model.json kept', async () => {
  const repo = new TempRepository({ cls: { versions: { 1: MODEL_FILES.ocrCls, 2: MODEL_FILES.ocrCls }, config: { maxBatchSize: 4 } } });
  const rt = await startRuntime(repo.dir);
  try {
    // The old version 2 serves on through the failed reload: the install must still see it failed.
    await assert.rejects(
      rt.runtime.installer.install('cls', 2, MODEL_FILES.ocrCls, { inputs: [{ name: 'x', datatype: 'INT32', dims: [-1, 3, 48, 192] }] }),
      (e: PerchError) => e.code === 'PERCH_ERR_MODEL_CONFIG_MISMATCH',
    );
    assert.deepEqual(readdirSync(join(repo.dir, 'cls')).sort(), ['1', '2', 'model.json']);
    assert.deepEqual(JSON.parse(readFileSync(join(repo.dir, 'cls', 'model.json'), 'utf8')), { maxBatchSize: 4 });
    assert.deepEqual(rt.runtime.registry.statusOf('cls').served, [2]);
    assert.ok(rt.runtime.registry.isReady(), 'no failed version left behind');
    assert.equal(rt.runtime.registry.resolve('cls').config.maxBatchSize, 4);
  } finally {
    await rt.stop();
    repo.remove();
  }
});
