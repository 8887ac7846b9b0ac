import { join } from 'node:path';
import { packageRoot } from '../../runtime/base/package-root.js';

export const REPO_ROOT = packageRoot();
export const SHIPPED_MODELS = join(REPO_ROOT, 'models');
/** Files the tests bring with them (test/fixtures/README.md says where each comes from). */
export const FIXTURES = join(REPO_ROOT, 'test', 'fixtures');

// Real ONNX models, from the npm packages that ship them (devDependencies, so `npm ci` on a fresh
// clone brings them), except BlazeFace, whose package depends on packages outside the npm
// registry: its file is a fixture. test/models/fixtures.test.ts checks every digest.
const NODE_MODULES = join(REPO_ROOT, 'node_modules');
const SILERO_VAD = join(NODE_MODULES, '@jjhbw', 'silero-vad', 'weights');
const PADDLE_OCR = join(NODE_MODULES, '@gutenye', 'ocr-models', 'assets');

export const MODEL_FILES = {
  sileroVad: join(SILERO_VAD, 'silero_vad.onnx'),
  sileroVad16k: join(SILERO_VAD, 'silero_vad_16k_op15.onnx'),
  ocrDet: join(PADDLE_OCR, 'ch_PP-OCRv4_det_infer.onnx'),
  ocrRec: join(PADDLE_OCR, 'ch_PP-OCRv4_rec_infer.onnx'),
  ocrCls: join(PADDLE_OCR, 'ch_ppocr_mobile_v2.0_cls_infer.onnx'),
  blazeface: join(FIXTURES, 'blazeface', 'face_detection_front_128x128_barracuda.onnx'),
} as const;

/** 7.8 s of speech, raw PCM, 16 kHz mono s16le (test/fixtures/README.md). */
export const SPEECH_SAMPLE = join(FIXTURES, 'speech_16k_s16le.raw');

/**
 * 640 x 160 images reading `Edge OCR 2026`, upright and turned 180 degrees (test/fixtures/README.md):
 * the PPM originals and their PNG and JPEG conversions.
 */
const IMAGES = join(FIXTURES, 'images');
export const OCR_IMAGES = {
  uprightPpm: join(IMAGES, 'text_edge_ocr_2026.ppm'),
  upsideDownPpm: join(IMAGES, 'text_edge_ocr_2026_rot180.ppm'),
  uprightPng: join(IMAGES, 'text_edge_ocr_2026.png'),
  upsideDownPng: join(IMAGES, 'text_edge_ocr_2026_rot180.png'),
  uprightJpeg: join(IMAGES, 'text_edge_ocr_2026.jpg'),
  upsideDownJpeg: join(IMAGES, 'text_edge_ocr_2026_rot180.jpg'),
} as const;

/**
 * A 256 x 256 photo with one face (NASA's portrait of Eileen Collins, public domain, from
 * scikit-image's sample data; test/fixtures/README.md): what the face detector must find.
 */
export const FACE_PHOTO = join(IMAGES, 'astronaut_256.jpg');
