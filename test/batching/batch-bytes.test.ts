// batching.maxBatchBytes (docs/models.md "One batch's memory"): the batcher never forms a batch
// whose input bytes exceed the bound (a request larger than it runs alone), with the real
// detector; bad values are refused with PERCH_ERR_MODEL_CONFIG_INVALID (model.json) or
// PERCH_ERR_CONFIG_INVALID (models.overrides); and the shipped pp-ocr-det runs every `ocr` image
// in a batch of its own (four 960 x 960 inputs in one batch held 1.1 GB of onnxruntime's arena).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import sharp from 'sharp';
import type { PerchError } from '../../runtime/base/errors.js';
import { parseConfig } from '../../runtime/config/load.js';
import { parseModelConfig } from '../../runtime/models/repository.js';
import { httpInfer } from '../helpers/clients.js';
import { randomFp32 } from '../helpers/models.js';
import { MODEL_FILES, SHIPPED_MODELS } from '../helpers/paths.js';
import { TempRepository } from '../helpers/repository.js';
import { startRuntime } from '../helpers/runtime.js';

interface BatchStat { batch_size: number; compute_infer: { count: number } }

async function batchStats(baseUrl: string, model: string): Promise<BatchStat[]> {
  const body = (await (await fetch(`${baseUrl}/v2/models/${model}/stats`)).json()) as { model_stats: Array<{ batch_stats: BatchStat[] }> };
  return body.model_stats[0]!.batch_stats;
}

/** One detector input [1, 3, 64, 64] FP32: 49,152 bytes. */
const ONE = 3 * 64 * 64 * 4;

test('no batch holds more input bytes than maxBatchSize allows by items and maxBatchBytes by bytes (real detector)', async () => {
  // maxQueueDelayMs long: without the byte bound the six would run as batches of 4 and 2 once
  // they queued; with it a batch goes as soon as the next request cannot join it.
  const repo = new TempRepository({
    det: { versions: { 1: MODEL_FILES.ocrDet }, config: { maxBatchSize: 4, batching: { maxQueueDelayMs: 2000, maxBatchBytes: Math.floor(2.5 * ONE) }, warmup: false } },
  });
  const rt = await startRuntime(repo.dir);
  try {
    const answers = await Promise.all(Array.from({ length: 6 }, (_, i) => httpInfer(rt.baseUrl, 'det', [randomFp32('x', [1, 3, 64, 64], i)], { binary: true })));
    for (const a of answers) {
      assert.equal(a.status, 200, JSON.stringify(a.body));
      assert.deepEqual(a.outputs[0]?.shape, [1, 1, 64, 64]);
    }
    const stats = await batchStats(rt.baseUrl, 'det');
    assert.ok(stats.length > 0);
    for (const s of stats) assert.ok(s.batch_size <= 2, `a batch of ${s.batch_size} inputs of ${ONE} bytes: over maxBatchBytes ${Math.floor(2.5 * ONE)}`);
    assert.equal(stats.reduce((n, s) => n + s.batch_size * s.compute_infer.count, 0), 6);
  } finally {
    await rt.stop();
    repo.remove();
  }
});

test('maxBatchBytes must be a positive integer: PERCH_ERR_MODEL_CONFIG_INVALID in model.json, PERCH_ERR_CONFIG_INVALID in models.overrides', () => {
  for (const bad of [0, -1, 1.5, '12582912', null]) {
    assert.throws(() => parseModelConfig('det', { batching: { maxBatchBytes: bad } }),
      (e: PerchError) => e.code === 'PERCH_ERR_MODEL_CONFIG_INVALID' && /batching\.maxBatchBytes/.test(e.message), `model.json maxBatchBytes ${String(bad)}`);
    assert.throws(() => parseConfig({ models: { overrides: { det: { batching: { maxBatchBytes: bad } } } } }),
      (e: PerchError) => e.code === 'PERCH_ERR_CONFIG_INVALID' && /maxBatchBytes/.test(e.message), `override maxBatchBytes ${String(bad)}`);
  }
  assert.equal(parseModelConfig('det', {}).batching.maxBatchBytes, undefined, 'unset: no bound');
  assert.equal(parseModelConfig('det', { batching: { maxBatchBytes: 1 } }).batching.maxBatchBytes, 1);
});

/** pp-ocr-det's input for the largest `ocr` image: 960 x 960 (the pipeline's maxSide), 3 channels, FP32. */
const LARGEST_DET_INPUT = 960 * 960 * 3 * 4;

test('the shipped pp-ocr-det: any ocr image runs, two of the largest never share a batch, and ocr\'s 16 at once are queued, not refused', () => {
  const det = parseModelConfig('pp-ocr-det', JSON.parse(readFileSync(join(SHIPPED_MODELS, 'pp-ocr-det', 'model.json'), 'utf8')));
  const ocr = parseModelConfig('ocr', JSON.parse(readFileSync(join(SHIPPED_MODELS, 'ocr', 'model.json'), 'utf8')));
  const bound = det.batching.maxBatchBytes ?? Infinity;
  assert.ok(bound >= LARGEST_DET_INPUT && bound < 2 * LARGEST_DET_INPUT, `maxBatchBytes ${bound}`);
  // The queue refuses once it holds maxQueueBytes: ocr's concurrency less the one running must fit.
  const concurrency = ocr.pipeline!.concurrency;
  assert.ok(det.batching.maxQueueBytes > (concurrency - 1) * LARGEST_DET_INPUT, `maxQueueBytes ${det.batching.maxQueueBytes} for ${concurrency} ocr runs`);
});

test('four 1,000 x 1,000 images at once to the shipped ocr: pp-ocr-det runs each in a batch of its own', async () => {
  const png = await sharp({ create: { width: 1000, height: 1000, channels: 3, background: { r: 255, g: 255, b: 255 } } }).png().toBuffer();
  const rt = await startRuntime(SHIPPED_MODELS);
  try {
    const answers = await Promise.all(Array.from({ length: 4 }, () =>
      fetch(`${rt.baseUrl}/v2/models/ocr/infer`, { method: 'POST', headers: { 'content-type': 'image/png' }, body: png }).then(async (r) => ({ status: r.status, body: await r.text() }))));
    for (const a of answers) assert.equal(a.status, 200, a.body);
    const stats = await batchStats(rt.baseUrl, 'pp-ocr-det');
    assert.deepEqual(stats.map((s) => [s.batch_size, s.compute_infer.count]), [[1, 4]]);
  } finally {
    await rt.stop();
  }
});
