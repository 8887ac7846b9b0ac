// The shipped `vad-segments` (a WAV in, Silero VAD over the whole clip, speech segments out) and
// `face-detect` (BlazeFace) pipelines.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import sharp from 'sharp';
import { after, before, test } from 'node:test';
import { decodeFaces } from '../../runtime/processing/blazeface.js';
import type { Tensor } from '../../runtime/tensor/tensor.js';
import { wavFile } from '../helpers/media.js';
import { FACE_PHOTO, OCR_IMAGES, SHIPPED_MODELS, SPEECH_SAMPLE } from '../helpers/paths.js';
import { startRuntime, type TestRuntime } from '../helpers/runtime.js';

// test/fixtures/README.md: what Silero VAD finds in the speech sample.
const EXPECTED = [[1.06, 1.54], [1.92, 2.78], [2.98, 3.68], [3.87, 5.98]];

let rt: TestRuntime;
before(async () => {
  rt = await startRuntime(SHIPPED_MODELS);
});
after(async () => {
  await rt.stop();
});

async function segments(wav: Buffer): Promise<number[][]> {
  const res = await fetch(`${rt.baseUrl}/v2/models/vad-segments/infer`, { method: 'POST', headers: { 'content-type': 'audio/wav' }, body: wav });
  const body = (await res.json()) as { outputs: Array<{ name: string; shape: number[]; data: number[] }> };
  assert.equal(res.status, 200, JSON.stringify(body));
  const out = body.outputs[0]!;
  assert.equal(out.name, 'segments');
  return Array.from({ length: out.shape[0]! }, (_, i) => [out.data[2 * i]!, out.data[2 * i + 1]!]);
}

function assertSegments(got: number[][], tolerance: number): void {
  assert.equal(got.length, EXPECTED.length, JSON.stringify(got));
  got.forEach(([s, e], i) => {
    assert.ok(Math.abs(s! - EXPECTED[i]![0]!) <= tolerance && Math.abs(e! - EXPECTED[i]![1]!) <= tolerance, `segment ${i}: ${s}-${e}`);
  });
}

test('the speech sample as a 16 kHz PCM16 WAV gives the four expected segments', async () => {
  assertSegments(await segments(wavFile(readFileSync(SPEECH_SAMPLE), { format: 1, bits: 16, rate: 16000 })), 0.04);
});

test('the same speech as float 32-bit stereo at 48 kHz is mixed down and resampled to the same segments', async () => {
  const pcm = readFileSync(SPEECH_SAMPLE);
  const n = pcm.length / 2;
  const out = Buffer.alloc(n * 3 * 2 * 4);
  for (let i = 0; i < n * 3; i++) {
    // Linear upsampling x3, the same signal on both channels.
    const p = i / 3;
    const j = Math.floor(p);
    const a = pcm.readInt16LE(2 * j) / 32768;
    const b = j + 1 < n ? pcm.readInt16LE(2 * (j + 1)) / 32768 : a;
    const v = a + (b - a) * (p - j);
    out.writeFloatLE(v, i * 8);
    out.writeFloatLE(v, i * 8 + 4);
  }
  assertSegments(await segments(wavFile(out, { format: 3, bits: 32, rate: 48000, channels: 2 })), 0.1);
});

test('face-detect answers boxes [n, 4], keypoints [n, 6, 2] and scores [n]; a page of text has no face', async () => {
  const res = await fetch(`${rt.baseUrl}/v2/models/face-detect/infer`, { method: 'POST', headers: { 'content-type': 'image/png' }, body: readFileSync(OCR_IMAGES.uprightPng) });
  const body = (await res.json()) as { outputs: Array<{ name: string; datatype: string; shape: number[] }> };
  assert.equal(res.status, 200, JSON.stringify(body));
  assert.deepEqual(body.outputs.map((o) => [o.name, o.datatype, o.shape]), [['boxes', 'FP32', [0, 4]], ['keypoints', 'FP32', [0, 6, 2]], ['scores', 'FP32', [0]]]);
});

test('BlazeFace decoding: anchor + regression in image pixels, and overlapping detections suppressed', () => {
  const scores16 = new Float32Array(512).fill(-10);
  const scores8 = new Float32Array(384).fill(-10);
  const reg16 = new Float32Array(512 * 16);
  const reg8 = new Float32Array(384 * 16);
  // Anchor 2 * (4 * 16 + 8) = cell (8, 4) of the 16 x 16 grid: centre (8.5/16, 4.5/16).
  const a = 2 * (4 * 16 + 8);
  scores16[a] = 4;
  reg16.set([0, 0, 32, 16, 1, 2], a * 16); // box 32 x 16 model pixels; keypoint 0 offset (1, 2)
  scores16[a + 1] = 2; // the same place, weaker: suppressed
  reg16.set([1, 1, 32, 16], (a + 1) * 16);
  const t = (name: string, shape: number[], data: Float32Array): Tensor => ({ name, datatype: 'FP32', shape, data });
  const image: Tensor = { name: 'picture', datatype: 'UINT8', shape: [200, 400, 3], data: new Uint8Array(200 * 400 * 3) };
  const [boxes, keypoints, scores] = decodeFaces(
    [t('s16', [1, 512, 1], scores16), t('s8', [1, 384, 1], scores8)],
    [t('r16', [1, 512, 16], reg16), t('r8', [1, 384, 16], reg8)],
    image, { inputSize: 128, resize: 'stretch', scoreThreshold: 0.5, iouThreshold: 0.3, maxFaces: 10 }, ['boxes', 'keypoints', 'scores'],
  ) as [Tensor, Tensor, Tensor];
  assert.deepEqual(boxes.shape, [1, 4]);
  const cx = 8.5 / 16, cy = 4.5 / 16;
  const want = [(cx - 16 / 128) * 400, (cy - 8 / 128) * 200, (cx + 16 / 128) * 400, (cy + 8 / 128) * 200];
  Array.from(boxes.data as Float32Array).forEach((v, i) => assert.ok(Math.abs(v - want[i]!) < 1e-3, `box[${i}] ${v} vs ${want[i]}`));
  assert.ok(Math.abs((keypoints.data as Float32Array)[0]! - (cx + 1 / 128) * 400) < 1e-3);
  assert.ok(Math.abs((scores.data as Float32Array)[0]! - 1 / (1 + Math.exp(-4))) < 1e-6);
});

// The face in test/fixtures/images/astronaut_256.jpg, read off the photo by eye (README there).
const FACE = { x0: 88, y0: 39, x1: 136, y1: 89 };
type Box = typeof FACE;

function iou(a: Box, b: Box): number {
  const w = Math.max(0, Math.min(a.x1, b.x1) - Math.max(a.x0, b.x0));
  const h = Math.max(0, Math.min(a.y1, b.y1) - Math.max(a.y0, b.y0));
  const area = (r: Box): number => (r.x1 - r.x0) * (r.y1 - r.y0);
  return (w * h) / (area(a) + area(b) - w * h);
}

async function faces(body: Buffer, type: string): Promise<{ boxes: Box[]; keypoints: number[][][]; scores: number[] }> {
  const res = await fetch(`${rt.baseUrl}/v2/models/face-detect/infer`, { method: 'POST', headers: { 'content-type': type }, body });
  const json = (await res.json()) as { outputs: Array<{ name: string; shape: number[]; data: number[] }> };
  assert.equal(res.status, 200, JSON.stringify(json));
  const out = Object.fromEntries(json.outputs.map((o) => [o.name, o]));
  const n = out.scores!.shape[0]!;
  return {
    boxes: Array.from({ length: n }, (_, i) => { const [x0, y0, x1, y1] = out.boxes!.data.slice(4 * i, 4 * i + 4) as [number, number, number, number]; return { x0, y0, x1, y1 }; }),
    keypoints: Array.from({ length: n }, (_, i) => Array.from({ length: 6 }, (_, k) => out.keypoints!.data.slice(12 * i + 2 * k, 12 * i + 2 * k + 2))),
    scores: out.scores!.data,
  };
}

/** One face where the photo has it; eyes above the nose above the mouth, eyes inside the box. */
function assertOneFace(got: Awaited<ReturnType<typeof faces>>, want: Box, label: string): void {
  assert.equal(got.scores.length, 1, `${label}: ${JSON.stringify(got)}`);
  assert.ok(got.scores[0]! >= 0.7, `${label}: score ${got.scores[0]}`);
  const box = got.boxes[0]!;
  assert.ok(iou(box, want) >= 0.6, `${label}: box ${JSON.stringify(box)} against ${JSON.stringify(want)}: IoU ${iou(box, want).toFixed(2)}`);
  const [eyeA, eyeB, nose, mouth] = got.keypoints[0]! as [number[], number[], number[], number[]];
  for (const eye of [eyeA, eyeB]) {
    assert.ok(eye[0]! > box.x0 && eye[0]! < box.x1 && eye[1]! > box.y0 && eye[1]! < box.y1, `${label}: eye ${eye} outside ${JSON.stringify(box)}`);
    assert.ok(eye[1]! < nose[1]!, `${label}: eye ${eye} not above the nose ${nose}`);
  }
  assert.ok(nose[1]! < mouth[1]!, `${label}: nose ${nose} not above the mouth ${mouth}`);
}

test('face-detect finds the one face of a real photo, where it is, with eyes above nose above mouth', async () => {
  assertOneFace(await faces(readFileSync(FACE_PHOTO), 'image/jpeg'), FACE, 'photo');
});

test('face-detect maps boxes back through a mirror and a letterbox: the face moves with the picture', async () => {
  const mirrored = await sharp(FACE_PHOTO).flop().png().toBuffer();
  assertOneFace(await faces(mirrored, 'image/png'), { x0: 256 - FACE.x1, y0: FACE.y0, x1: 256 - FACE.x0, y1: FACE.y1 }, 'mirrored');
  // The top 128 x 128 around the face (from x 48) on the right half of a 256 x 128 grey picture:
  // not square, so the model sees it letterboxed (at the full photo's scale, 0.5), and the answer
  // must still be in the picture's own pixels.
  const crop = await sharp(FACE_PHOTO).extract({ left: 48, top: 0, width: 128, height: 128 }).png().toBuffer();
  const wide = await sharp({ create: { width: 256, height: 128, channels: 3, background: { r: 128, g: 128, b: 128 } } })
    .composite([{ input: crop, left: 128, top: 0 }]).png().toBuffer();
  const dx = 128 - 48;
  assertOneFace(await faces(wide, 'image/png'), { x0: FACE.x0 + dx, y0: FACE.y0, x1: FACE.x1 + dx, y1: FACE.y1 }, 'wide');
});
