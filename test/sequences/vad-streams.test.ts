// 200 live audio streams through one stateful model: each stream's speech probabilities equal
// that stream run alone through raw onnxruntime with the state fed back by hand, and the
// segments found match test/fixtures/README.md (the batches' stacked buffers come from a pool,
// used again once a session thread gives them back). Streams start at staggered moments (each
// after the previous one's second answer), so every batch mixes streams at different points of
// the audio, and a quarter of them also read the audio from another sample offset: a state
// given to the wrong stream, or two chunks of one stream reordered, would change the numbers.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import ort from 'onnxruntime-node';
import WebSocket from 'ws';
import { MODEL_FILES, SHIPPED_MODELS } from '../helpers/paths.js';
import { startRuntime, type TestRuntime } from '../helpers/runtime.js';
import { chunkInputs, loadSpeech, rawStream, speechSegments, vadChunkFrame } from '../helpers/vad.js';

const STREAMS = 200;
const CONNECTIONS = 20;
const MANIFEST_SEGMENTS: Array<[number, number]> = [[1.06, 1.54], [1.92, 2.78], [2.98, 3.68], [3.87, 5.98]];

function frame(id: string, seq: string, input: Float32Array, start: boolean, end: boolean): Buffer {
  return vadChunkFrame(id, { sequence_id: seq, sequence_start: start, sequence_end: end }, input);
}

/** One connection carrying several streams; answers are matched by id. */
class Link {
  private readonly waiting = new Map<string, (p: number) => void>();
  private readonly failed: string[] = [];
  private constructor(private readonly ws: WebSocket) {
    ws.on('message', (data: Buffer, isBinary) => {
      const n = isBinary ? data.readUInt32LE(0) : data.length;
      const header = JSON.parse((isBinary ? data.subarray(4, 4 + n) : data).toString()) as { id: string; ok: boolean; error?: unknown };
      if (!header.ok) this.failed.push(JSON.stringify(header));
      const prob = isBinary ? data.readFloatLE(4 + n) : Number.NaN;
      this.waiting.get(header.id)?.(prob);
      this.waiting.delete(header.id);
    });
  }

  static open(url: string): Promise<Link> {
    const ws = new WebSocket(url, { perMessageDeflate: false });
    return new Promise((resolve, reject) => {
      ws.once('open', () => resolve(new Link(ws)));
      ws.once('error', reject);
    });
  }

  send(id: string, data: Buffer): Promise<number> {
    return new Promise((resolve) => {
      this.waiting.set(id, resolve);
      this.ws.send(data);
    });
  }

  get errors(): string[] {
    return this.failed;
  }

  close(): void {
    this.ws.close();
  }
}

let rt: TestRuntime;
before(async () => {
  rt = await startRuntime(SHIPPED_MODELS);
});
after(() => rt.stop());

test('200 concurrent VAD streams equal their raw runs and find the MANIFEST speech segments', async () => {
  const audio = loadSpeech();
  const offsets = Array.from({ length: STREAMS }, (_, i) => (i % 4 === 3 ? 128 + ((i * 131) % 1900) : 0));
  const chunksByOffset = new Map<number, Float32Array[]>();
  for (const o of offsets) if (!chunksByOffset.has(o)) chunksByOffset.set(o, chunkInputs(audio, o));

  const links = await Promise.all(Array.from({ length: CONNECTIONS }, () => Link.open(rt.wsUrl)));
  const results: number[][] = [];
  let started: () => void = () => undefined;
  const runStream = async (i: number): Promise<void> => {
    const link = links[i % CONNECTIONS] as Link;
    const chunks = chunksByOffset.get(offsets[i] as number) as Float32Array[];
    const probs: number[] = [];
    for (let k = 0; k < chunks.length; k++) {
      probs.push(await link.send(`s${i}c${k}`, frame(`s${i}c${k}`, `stream-${i}`, chunks[k] as Float32Array, k === 0, k === chunks.length - 1)));
      if (k === 1) started(); // let the next stream begin
    }
    results[i] = probs;
  };
  const running: Promise<void>[] = [];
  for (let i = 0; i < STREAMS; i++) {
    const next = new Promise<void>((resolve) => (started = resolve));
    running.push(runStream(i));
    await next;
  }
  await Promise.all(running);
  for (const l of links) l.close();
  assert.deepEqual(links.flatMap((l) => l.errors), []);

  const session = await ort.InferenceSession.create(MODEL_FILES.sileroVad16k, { intraOpNumThreads: 1, interOpNumThreads: 1, graphOptimizationLevel: 'all' });
  const reference = new Map<number, number[]>();
  for (const [o, chunks] of chunksByOffset) reference.set(o, await rawStream(session, chunks));
  await session.release();

  for (let i = 0; i < STREAMS; i++) {
    const want = reference.get(offsets[i] as number) as number[];
    const got = results[i] as number[];
    assert.equal(got.length, want.length, `stream ${i} length`);
    for (let k = 0; k < want.length; k++) {
      assert.ok(Math.abs((got[k] as number) - (want[k] as number)) <= 1e-4, `stream ${i} chunk ${k}: ${got[k]} vs ${want[k]}`);
    }
    if (offsets[i] === 0) {
      const segs = speechSegments(got);
      assert.equal(segs.length, MANIFEST_SEGMENTS.length, `stream ${i} segments ${JSON.stringify(segs)}`);
      segs.forEach(([a, b], j) => {
        const [wa, wb] = MANIFEST_SEGMENTS[j] as [number, number];
        assert.ok(Math.abs(a - wa) < 0.02 && Math.abs(b - wb) < 0.02, `stream ${i} segment ${j}: ${a.toFixed(2)}-${b.toFixed(2)} vs ${wa}-${wb}`);
      });
    }
  }
  // The streams really were batched together, and every sequence ended and was freed.
  const metrics = await (await fetch(`${rt.baseUrl}/metrics`)).text();
  const value = (name: string) => Number(metrics.split('\n').find((l) => l.startsWith(`${name}{model="silero-vad"`))?.split(' ').pop() ?? 0);
  assert.ok(value('perch_inference_count_total') / value('perch_inference_exec_count_total') > 2, 'average batch above 2');
  assert.equal(rt.runtime.sequences.stats().length, 0);
  // Batches were stacked into buffers used again after a session thread handed them back
  // (tensor/buffer-pool.ts), and their state split in place (tensor.ts regroup): with the
  // answers above equal to the raw runs, no buffer was written while a batch still read it.
  const pool = rt.runtime.registry.resolve('silero-vad').poolStats;
  assert.ok(pool.reused > 0, `stacked buffers used again: ${JSON.stringify(pool)}`);
});
