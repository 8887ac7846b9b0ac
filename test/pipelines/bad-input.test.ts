// Hostile and broken files sent to the shipped pipelines: each gets its PERCH_ERR_* code (and the
// failing step's name), nothing is decoded past what the header allows, and the process goes on
// serving everyone else.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, test } from 'node:test';
import { OCR_IMAGES, SHIPPED_MODELS, SPEECH_SAMPLE } from '../helpers/paths.js';
import { hugePngHeader, wavFile } from '../helpers/media.js';
import { startRuntime, type TestRuntime } from '../helpers/runtime.js';

let rt: TestRuntime;
before(async () => {
  rt = await startRuntime(SHIPPED_MODELS);
});
after(async () => {
  await rt.stop();
});

async function post(model: string, type: string, body: Buffer | string): Promise<{ status: number; code?: string; error?: string; body: Record<string, unknown> }> {
  const res = await fetch(`${rt.baseUrl}/v2/models/${model}/infer`, { method: 'POST', headers: { 'content-type': type }, body });
  const json = (await res.json()) as Record<string, unknown>;
  return { status: res.status, code: json.code as string | undefined, error: json.error as string | undefined, body: json };
}

async function expectError(model: string, type: string, body: Buffer | string, status: number, code: string, step?: string): Promise<void> {
  const r = await post(model, type, body);
  assert.equal(r.status, status, `${code}: ${JSON.stringify(r.body)}`);
  assert.equal(r.code, code, JSON.stringify(r.body));
  if (step) assert.match(r.error ?? '', new RegExp(`step '${step}'`));
}

test('not an image, a truncated PNG or JPEG: 400 PERCH_ERR_IMAGE_INVALID from the decode step', async () => {
  await expectError('ocr', 'image/png', 'this is not a picture', 400, 'PERCH_ERR_IMAGE_INVALID', 'decode');
  const png = readFileSync(OCR_IMAGES.uprightPng);
  await expectError('ocr', 'image/png', png.subarray(0, png.length >> 1), 400, 'PERCH_ERR_IMAGE_INVALID', 'decode');
  const jpeg = readFileSync(OCR_IMAGES.uprightJpeg);
  await expectError('face-detect', 'image/jpeg', jpeg.subarray(0, jpeg.length >> 1), 400, 'PERCH_ERR_IMAGE_INVALID', 'decode');
  // A PPM is an image, but not one of the formats served.
  await expectError('ocr', 'image/png', readFileSync(OCR_IMAGES.uprightPpm), 400, 'PERCH_ERR_IMAGE_INVALID', 'decode');
});

test('a 20,000 x 20,000 PNG is refused from its header (413 PERCH_ERR_IMAGE_TOO_LARGE), never decoded', async () => {
  const bomb = hugePngHeader(20_000, 20_000);
  assert.ok(bomb.length < 200, `${bomb.length} bytes on the wire`);
  const rssBefore = process.memoryUsage().rss;
  await expectError('ocr', 'image/png', bomb, 413, 'PERCH_ERR_IMAGE_TOO_LARGE', 'decode');
  // 1.2 GB if it had been decoded; the process (which holds the runtime) grew by far less.
  assert.ok(process.memoryUsage().rss - rssBefore < 200 * 1024 * 1024);
});

test('a 0-byte body or BYTES element: 400 PERCH_ERR_EMPTY_INPUT', async () => {
  await expectError('ocr', 'image/png', Buffer.alloc(0), 400, 'PERCH_ERR_EMPTY_INPUT');
  const res = await fetch(`${rt.baseUrl}/v2/models/ocr/infer`, {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ inputs: [{ name: 'image', shape: [1], datatype: 'BYTES', parameters: { content_type: 'base64' }, data: [''] }] }),
  });
  assert.equal(res.status, 400);
  assert.equal(((await res.json()) as { code: string }).code, 'PERCH_ERR_EMPTY_INPUT');
});

test('WAV files: unsupported sample format 415 PERCH_ERR_AUDIO_UNSUPPORTED, broken ones 400 PERCH_ERR_AUDIO_INVALID', async () => {
  const pcm8 = wavFile(Buffer.alloc(16000, 128), { format: 1, bits: 8, rate: 16000 });
  await expectError('vad-segments', 'audio/wav', pcm8, 415, 'PERCH_ERR_AUDIO_UNSUPPORTED', 'decode');
  const alaw = wavFile(Buffer.alloc(16000), { format: 6, bits: 8, rate: 8000 });
  await expectError('vad-segments', 'audio/wav', alaw, 415, 'PERCH_ERR_AUDIO_UNSUPPORTED', 'decode');
  await expectError('vad-segments', 'audio/wav', 'RIFF....not a wave', 400, 'PERCH_ERR_AUDIO_INVALID', 'decode');
  const good = wavFile(readFileSync(SPEECH_SAMPLE), { format: 1, bits: 16, rate: 16000 });
  await expectError('vad-segments', 'audio/x-wav', good.subarray(0, 20_000), 400, 'PERCH_ERR_AUDIO_INVALID', 'decode');
  // An image where a sound is expected.
  await expectError('vad-segments', 'audio/wav', readFileSync(OCR_IMAGES.uprightPng), 400, 'PERCH_ERR_AUDIO_INVALID', 'decode');
});

test('media types Perch does not decode, and files to a model that takes none: 415 PERCH_ERR_MEDIA_UNSUPPORTED', async () => {
  await expectError('ocr', 'image/gif', Buffer.from('GIF89a'), 415, 'PERCH_ERR_MEDIA_UNSUPPORTED');
  await expectError('silero-vad', 'audio/wav', wavFile(Buffer.alloc(1024), { format: 1, bits: 16, rate: 16000 }), 415, 'PERCH_ERR_MEDIA_UNSUPPORTED');
});

test('bad base64 in a JSON BYTES input: 400 PERCH_ERR_TENSOR_DATA; an unknown content_type: 400 PERCH_ERR_INVALID_PARAMETER', async () => {
  const send = (parameters: Record<string, unknown>, data: string): Promise<Response> => fetch(`${rt.baseUrl}/v2/models/ocr/infer`, {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ inputs: [{ name: 'image', shape: [1], datatype: 'BYTES', parameters, data: [data] }] }),
  });
  const bad = await send({ content_type: 'base64' }, 'iVBOR*w0K');
  assert.equal(bad.status, 400);
  assert.equal(((await bad.json()) as { code: string }).code, 'PERCH_ERR_TENSOR_DATA');
  const unknown = await send({ content_type: 'hex' }, '00');
  assert.equal(unknown.status, 400);
  assert.equal(((await unknown.json()) as { code: string }).code, 'PERCH_ERR_INVALID_PARAMETER');
});

test('after all of that the pipelines still serve', async () => {
  const r = await post('ocr', 'image/png', readFileSync(OCR_IMAGES.uprightPng));
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.deepEqual((r.body.outputs as Array<{ name: string; data: unknown[] }>).find((o) => o.name === 'text')?.data, ['Edge OCR 2026']);
});
