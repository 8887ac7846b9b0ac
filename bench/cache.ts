// Result cache benchmark: the latency of a cache hit (key hash + lookup + decode) for a PP-OCR
// direction-classifier input, FP32 [1,3,48,192], next to that model's own raw session.run
// (onnxruntime-node, 1 intra-op thread, graph optimisation 'all') in the same run.
// Target: a hit costs <= 0.2 x an inference. Run: node dist/bench/cache.js
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import ort from 'onnxruntime-node';
import { cacheKey } from '../runtime/store/result-cache-key.js';
import { openStore } from '../runtime/store/store.js';
import type { Tensor } from '../runtime/tensor/tensor.js';
import { MODEL_FILES } from '../test/helpers/paths.js';
import { printTable } from './lib/stats.js';
import { summarize, us } from './lib/store-stats.js';
import { disableOrtTelemetry } from '../runtime/sessions/ort-telemetry.js';

// Raw sessions run as Perch's do: without ORT's telemetry (runtime/sessions/ort-telemetry.ts).
disableOrtTelemetry();

const MODEL = MODEL_FILES.ocrCls;
const SHAPE = [1, 3, 48, 192];
const INFER_WARMUP = 30;
const INFER_RUNS = 500;
const HIT_WARMUP = 500;
const HIT_RUNS = 20_000;

function randomInput(seed: number): Float32Array {
  const data = new Float32Array(SHAPE.reduce((a, b) => a * b, 1));
  let x = seed;
  for (let i = 0; i < data.length; i++) {
    x = (x * 1664525 + 1013904223) >>> 0;
    data[i] = x / 2 ** 32 - 0.5;
  }
  return data;
}

async function main(): Promise<void> {
  console.log(`# cache benchmark: node ${process.version}, ${cpus().length} cpus (${cpus()[0]?.model ?? '?'})`);
  console.log(`# model ${MODEL}`);
  const session = await ort.InferenceSession.create(MODEL, {
    executionProviders: ['cpu'],
    intraOpNumThreads: 1,
    interOpNumThreads: 1,
    graphOptimizationLevel: 'all',
  });
  const inputName = session.inputNames[0] as string;
  const data = randomInput(42);
  const feeds = { [inputName]: new ort.Tensor('float32', data, SHAPE) };

  // Raw inference.
  let result = await session.run(feeds);
  for (let i = 0; i < INFER_WARMUP; i++) result = await session.run(feeds);
  const infer: number[] = [];
  for (let i = 0; i < INFER_RUNS; i++) {
    const t0 = performance.now();
    result = await session.run(feeds);
    infer.push(performance.now() - t0);
  }
  const outputs: Tensor[] = session.outputNames.map((name) => {
    const t = result[name] as ort.Tensor;
    return { name, datatype: 'FP32', shape: t.dims.slice(), data: t.data as Float32Array };
  });

  // Cache hits: what the request path does on a hit, key included.
  const dir = mkdtempSync(join(tmpdir(), 'perch-bench-cache-'));
  const store = openStore({ dataDir: dir });
  try {
    const inputs: Tensor[] = [{ name: inputName, datatype: 'FP32', shape: SHAPE, data }];
    // Other entries around it, so the lookup is not in a one-row table.
    for (let i = 0; i < 2000; i++) {
      store.cache.put(cacheKey('ocr-cls', 1, [{ ...inputs[0] as Tensor, data: new Float32Array([i]), shape: [1] }]), 'ocr-cls', 1, outputs);
    }
    store.cache.put(cacheKey('ocr-cls', 1, inputs), 'ocr-cls', 1, outputs);
    store.cache.flush();
    const keyT: number[] = [];
    const getT: number[] = [];
    const total: number[] = [];
    for (let i = 0; i < HIT_WARMUP + HIT_RUNS; i++) {
      const t0 = performance.now();
      const key = cacheKey('ocr-cls', 1, inputs);
      const t1 = performance.now();
      const hit = store.cache.get(key, 'ocr-cls', 1);
      const t2 = performance.now();
      if (!hit) throw new Error('expected a cache hit');
      if (i >= HIT_WARMUP) {
        keyT.push(t1 - t0);
        getT.push(t2 - t1);
        total.push(t2 - t0);
      }
    }
    const inf = summarize(infer);
    const k = summarize(keyT);
    const g = summarize(getT);
    const h = summarize(total);
    printTable(
      'result cache: a hit next to an inference',
      ['measure', 'p50', 'p99', 'runs'],
      [
        ['raw session.run (1 thread)', us(inf.p50), us(inf.p99), String(inf.n)],
        ['cache key (SHA-256 of 110 KiB input)', us(k.p50), us(k.p99), String(k.n)],
        ['cache get (lookup + decode)', us(g.p50), us(g.p99), String(g.n)],
        ['cache hit total (key + get)', us(h.p50), us(h.p99), String(h.n)],
      ],
    );
    console.log(`# hit / inference: p50 ${(h.p50 / inf.p50).toFixed(3)}, p99 ${(h.p99 / inf.p99).toFixed(3)} (target <= 0.2)`);
    console.log(`# cache stats: ${JSON.stringify({ ...store.cache.stats(), byModel: undefined })}`);
  } finally {
    await store.close();
    await session.release();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
