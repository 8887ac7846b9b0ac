// OCR pipeline benchmark (issue 17): the shipped `ocr` pipeline on the sample image, Perch in its
// own process (raw PNG body over HTTP) next to a hand-written pipeline in this process: the same
// sharp decoding and resizing, the same post-processing functions and plain onnxruntime sessions
// (det, cls, rec) called directly, no server, no threads of its own. Phases alternate round by
// round; figures are medians over rounds.
// Headline: images/s at 4 concurrent clients (target Perch >= 0.9 x hand-written) and p50 at 1
// client (target Perch <= 1.15 x).
// Run: node dist/bench/pipeline.js   (PERCH_BENCH_ROUNDS, PERCH_BENCH_IMAGES to change the size)
import { readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import type ort from 'onnxruntime-node';
import { fromOrtResults } from '../runtime/sessions/ort-session.js';
import { cropTensor, decodeImage, imageTensor, type Layout } from '../runtime/processing/image.js';
import { textRegions } from '../runtime/processing/text-regions.js';
import { ctcGreedy } from '../runtime/processing/ctc.js';
import type { Tensor } from '../runtime/tensor/tensor.js';
import { OCR_IMAGES, SHIPPED_MODELS } from '../test/helpers/paths.js';
import { buildRepository, startPerch } from './lib/perch-server.js';
import { openRaw, runRaw } from './lib/raw-ort.js';
import { machine, saveSection } from './lib/results.js';
import { median, ms, percentile, printTable, ratio } from './lib/stats.js';

const ROUNDS = Number(process.env.PERCH_BENCH_ROUNDS ?? 3);
const IMAGES = Number(process.env.PERCH_BENCH_IMAGES ?? 40); // per phase
const TEXT = 'Edge OCR 2026';
const PNG = readFileSync(OCR_IMAGES.uprightPng);
const KEYS = readFileSync(join(SHIPPED_MODELS, 'ocr', 'ppocr_keys_v1.txt'), 'utf8').split('\n');
const DET: Layout = { colour: 'BGR', mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225], layout: 'NCHW' };
const CROP: Layout = { colour: 'BGR', mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5], layout: 'NCHW' };

interface Raw { det: ort.InferenceSession; cls: ort.InferenceSession; rec: ort.InferenceSession }

async function run(s: ort.InferenceSession, t: Tensor): Promise<Tensor> {
  return fromOrtResults(await runRaw(s, [t]))[0] as Tensor;
}

/** The hand-written pipeline: what an app would write with sharp and onnxruntime-node. */
async function handWritten(raw: Raw): Promise<string> {
  const picture = await decodeImage({ name: 'image', datatype: 'BYTES', shape: [1], data: [PNG] }, 40_000_000, 'picture');
  const detX = await imageTensor(picture, { ...DET, resize: 'fit32', maxSide: 960 }, 'x');
  const map = await run(raw.det, detX);
  const [boxes] = textRegions(map, picture, { threshold: 0.3, boxThreshold: 0.6, unclipRatio: 1.5, minSize: 3, maxRegions: 100 }, 'boxes', 'scores');
  const n = boxes.shape[0] ?? 0;
  if (n === 0) return '';
  const dir = await run(raw.cls, { ...cropTensor(picture, boxes, 48, 192, CROP, [], 'x'), name: 'x' });
  const p = dir.data as Float32Array;
  const rotate = Array.from({ length: n }, (_, i) => (p[i * 2 + 1] ?? 0) >= 0.9);
  const recX = cropTensor(picture, boxes, 48, 320, CROP, rotate, 'x');
  const probs = await run(raw.rec, recX);
  const [text] = ctcGreedy(probs, KEYS, true, 'text', 'conf');
  return (text.data as Uint8Array[]).map((e) => Buffer.from(e).toString()).join('\n');
}

async function perch(baseUrl: string): Promise<string> {
  const res = await fetch(`${baseUrl}/v2/models/ocr/infer`, { method: 'POST', headers: { 'content-type': 'image/png' }, body: PNG });
  const body = (await res.json()) as { outputs?: Array<{ name: string; data: string[] }> };
  return body.outputs?.find((o) => o.name === 'text')?.data.join('\n') ?? `HTTP ${res.status}`;
}

/** `clients` loops, `total` images in all; latencies of each and images/s of the whole. */
async function load(clients: number, total: number, call: () => Promise<string>): Promise<{ perSecond: number; lat: number[] }> {
  const lat: number[] = [];
  let next = 0;
  const t0 = performance.now();
  await Promise.all(Array.from({ length: clients }, async () => {
    while (next++ < total) {
      const s = performance.now();
      const text = await call();
      lat.push(performance.now() - s);
      if (text !== TEXT) throw new Error(`read '${text}'`);
    }
  }));
  return { perSecond: (total * 1000) / (performance.now() - t0), lat };
}

async function main(): Promise<void> {
  const m = machine();
  const repository = buildRepository(['ocr', 'pp-ocr-det', 'pp-ocr-cls', 'pp-ocr-rec']);
  const server = await startPerch({ repository, ownRepository: true });
  const raw: Raw = {
    det: await openRaw(join(SHIPPED_MODELS, 'pp-ocr-det', '1', 'model.onnx')),
    cls: await openRaw(join(SHIPPED_MODELS, 'pp-ocr-cls', '1', 'model.onnx')),
    rec: await openRaw(join(SHIPPED_MODELS, 'pp-ocr-rec', '1', 'model.onnx')),
  };
  const results = { rawTput: [] as number[], perchTput: [] as number[], rawP50: [] as number[], perchP50: [] as number[] };
  try {
    await load(2, 8, () => handWritten(raw));
    await load(4, 16, () => perch(server.baseUrl)); // starts the processing threads
    for (let r = 0; r < ROUNDS; r++) {
      results.rawTput.push((await load(4, IMAGES, () => handWritten(raw))).perSecond);
      results.perchTput.push((await load(4, IMAGES, () => perch(server.baseUrl))).perSecond);
      results.rawP50.push(percentile((await load(1, IMAGES / 2, () => handWritten(raw))).lat, 50));
      results.perchP50.push(percentile((await load(1, IMAGES / 2, () => perch(server.baseUrl))).lat, 50));
      console.error(`round ${r + 1}/${ROUNDS} done (load average ${loadavg()[0]?.toFixed(2)})`);
    }
    const batchRec = (await server.metric('perch_inference_count_total', { model: 'pp-ocr-rec' })) / (await server.metric('perch_inference_exec_count_total', { model: 'pp-ocr-rec' }));
    const tput = { raw: median(results.rawTput), perch: median(results.perchTput) };
    const p50 = { raw: median(results.rawP50), perch: median(results.perchP50) };
    const loadEnd = Number((loadavg()[0] ?? 0).toFixed(2));
    printTable('OCR pipeline on the 640 x 160 sample PNG (medians over rounds)', ['figure', 'hand-written', 'Perch', 'Perch / hand-written', 'target'], [
      ['images/s, 4 clients', tput.raw.toFixed(1), tput.perch.toFixed(1), ratio(tput.perch / tput.raw), '>= 0.9'],
      ['p50, 1 client', ms(p50.raw), ms(p50.perch), ratio(p50.perch / p50.raw), '<= 1.15'],
    ]);
    console.log(`pp-ocr-rec average batch in Perch: ${batchRec.toFixed(2)}; load average ${m.loadavg1mAtStart} at start, ${loadEnd} at the end`);
    saveSection('pipeline', {
      rounds: ROUNDS, imagesPerPhase: IMAGES, throughput: tput, p50Ms: p50, throughputRatio: tput.perch / tput.raw, p50Ratio: p50.perch / p50.raw,
      perRound: results, recAverageBatch: batchRec, loadavgAtEnd: loadEnd,
    }, 'node dist/bench/pipeline.js');
  } finally {
    await server.stop();
    await Promise.all([raw.det.release(), raw.cls.release(), raw.rec.release()]);
  }
}

await main();
