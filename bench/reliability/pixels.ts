// Decoded pixels in flight (issue 12, docs/models.md "Pipelines"): N concurrent 6,300 x 6,300
// white PNGs (128 KB on the wire, 39.7 million pixels, under the default maxPixels) posted to the
// shipped `ocr` pipeline on a runtime started in this process as the tests start it. Prints the
// answers' status codes, the peak RSS (the kernel's high-water mark, VmHWM, reset after the
// models loaded: a 10 ms sampler missed peaks inside a session run) and the RSS 1 s, 10 s and 30 s
// after the last answer (after one ordinary request has loaded the models; issue 12 asks for RSS
// within 50 MB of idle 30 s after the clients leave), and the pixel budget's gauges.
// Then, with PERCH_PIXELS_ORDINARY=<rounds> (default 20), the shipped test images one at a time:
// their text and median latency, to compare builds A/B (paired, interleaved runs).
// Run: node dist/bench/reliability/pixels.js <n>   (one process per n: RSS is the process's)
// with npm start's malloc settings to measure what a device runs:
//   env MALLOC_ARENA_MAX=2 MALLOC_MMAP_THRESHOLD_=16384 node dist/bench/reliability/pixels.js 4
import { readFileSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import sharp from 'sharp';
import { OCR_IMAGES, SHIPPED_MODELS } from '../../test/helpers/paths.js';
import { startRuntime } from '../../test/helpers/runtime.js';
import { mallocTrim } from '../../runtime/base/malloc-trim.js';

const N = Number(process.argv[2] ?? 1);
const ORDINARY = Number(process.env.PERCH_PIXELS_ORDINARY ?? 20);
/** The big image's side: 6,300 (39.7 Mpx); 1,000 gives the same 960 x 960 detector input with 40 times fewer pixels. */
const SIDE = Number(process.env.PERCH_PIXELS_SIDE ?? 6300);
/**
 * pp-ocr-det's batching.maxBatchBytes for this run (models.overrides), to weigh the bound A/B in
 * one build: e.g. 2147483647 for batches bounded by maxBatchSize only. Unset: model.json's.
 */
const DET_BATCH_BYTES = process.env.PERCH_PIXELS_DET_BATCH_BYTES ? Number(process.env.PERCH_PIXELS_DET_BATCH_BYTES) : null;
const MB = (b: number): number => Math.round(b / 1e6);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** The process's peak RSS since the last resetPeak (Linux: VmHWM in /proc/self/status), or 0 elsewhere. */
function kernelPeak(): number {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/** Resets VmHWM to the current RSS (proc(5): clear_refs 5); false where that is not allowed. */
function resetPeak(): boolean {
  try {
    writeFileSync('/proc/self/clear_refs', '5');
    return true;
  } catch {
    return false;
  }
}

async function bigPng(): Promise<Buffer> {
  return sharp({ create: { width: SIDE, height: SIDE, channels: 3, background: { r: 255, g: 255, b: 255 } } }).png({ compressionLevel: 9 }).toBuffer();
}

async function post(baseUrl: string, body: Buffer): Promise<{ status: number; code?: string; text?: string }> {
  const res = await fetch(`${baseUrl}/v2/models/ocr/infer`, { method: 'POST', headers: { 'content-type': 'image/png' }, body });
  const json = (await res.json()) as { code?: string; outputs?: Array<{ name: string; data: string[] }> };
  const text = json.outputs?.find((o) => o.name === 'text')?.data.join('|');
  return { status: res.status, ...(json.code ? { code: json.code } : {}), ...(text !== undefined ? { text } : {}) };
}

async function gauges(baseUrl: string): Promise<string> {
  const text = await (await fetch(`${baseUrl}/metrics`)).text();
  return text.split('\n').filter((l) => l.startsWith('perch_pipeline_pixels')).join('; ') || '(no pixel gauges)';
}

const png = await bigPng();
const rt = await startRuntime(SHIPPED_MODELS, DET_BATCH_BYTES === null ? {} : { models: { overrides: { 'pp-ocr-det': { batching: { maxBatchBytes: DET_BATCH_BYTES } } } } } as Parameters<typeof startRuntime>[1]);
try {
  // One ordinary image first: the three OCR models load, so the peak below is the big images'.
  const coldRss = process.memoryUsage().rss;
  await post(rt.baseUrl, readFileSync(OCR_IMAGES.uprightPng));
  const idle = process.memoryUsage().rss;
  console.log(`warm-up: rss ${MB(coldRss)} MB before, ${MB(idle)} MB after the first ordinary OCR request (models loaded)`);
  const hwm = resetPeak();
  let peak = idle;
  let atPeak = '';
  const sampler = setInterval(() => {
    const m = process.memoryUsage();
    // arrayBuffers: what the main thread's V8 counts (the processing threads' own are not in it).
    if (m.rss > peak) { peak = m.rss; atPeak = `heap ${MB(m.heapUsed)} MB, arrayBuffers ${MB(m.arrayBuffers)} MB`; }
  }, 10);
  const t0 = performance.now();
  const answers = await Promise.all(Array.from({ length: N }, () => post(rt.baseUrl, png)));
  const wallMs = performance.now() - t0;
  await sleep(1000);
  const after1 = process.memoryUsage().rss;
  await sleep(9000);
  const after10 = process.memoryUsage().rss;
  const ab10 = process.memoryUsage().arrayBuffers;
  await sleep(20_000);
  const after30 = process.memoryUsage().rss;
  if (hwm) peak = Math.max(peak, kernelPeak());
  // What of that is freed memory glibc keeps (no collection: only what is already free).
  mallocTrim().trim();
  const trimmed = process.memoryUsage().rss;
  clearInterval(sampler);
  const codes = answers.map((a) => a.code ?? String(a.status)).join(',');
  console.log(`big n=${N} side=${SIDE}${DET_BATCH_BYTES === null ? '' : ` detBatchBytes=${DET_BATCH_BYTES}`} png=${png.length}B answers=[${codes}] wall=${Math.round(wallMs)}ms idle=${MB(idle)}MB peak=${MB(peak)}MB after1s=${MB(after1)}MB after10s=${MB(after10)}MB after30s=${MB(after30)}MB trimmed=${MB(trimmed)}MB load=${loadavg()[0]!.toFixed(1)}`);
  console.log(`at peak: ${atPeak}; main thread arrayBuffers 10 s after: ${MB(ab10)} MB`);
  console.log(`gauges after: ${await gauges(rt.baseUrl)}`);
  if (ORDINARY > 0) {
    const images = [OCR_IMAGES.uprightPng, OCR_IMAGES.upsideDownPng].map((p) => readFileSync(p));
    const ms: number[] = [];
    const texts = new Set<string>();
    for (let r = 0; r < ORDINARY; r++) {
      for (const img of images) {
        const s = performance.now();
        const a = await post(rt.baseUrl, img);
        ms.push(performance.now() - s);
        texts.add(`${a.status}:${a.text ?? a.code}`);
      }
    }
    ms.sort((a, b) => a - b);
    console.log(`ordinary ${ms.length} requests texts=${JSON.stringify([...texts])} p50=${ms[ms.length >> 1]!.toFixed(1)}ms p90=${ms[Math.floor(ms.length * 0.9)]!.toFixed(1)}ms load=${loadavg()[0]!.toFixed(1)}`);
  }
} finally {
  await rt.stop();
}
