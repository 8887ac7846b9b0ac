import { join } from 'node:path';
import { packageRoot } from '../../runtime/config/paths.js';

export const REPO_ROOT = packageRoot();
/** Real ONNX models from npm packages (../shared/models, see its MANIFEST.md). */
export const SHARED_MODELS = join(REPO_ROOT, '..', 'shared', 'models');
export const SHIPPED_MODELS = join(REPO_ROOT, 'models');

export const MODEL_FILES = {
  sileroVad: join(SHARED_MODELS, 'silero-vad', 'silero_vad.onnx'),
  sileroVad16k: join(SHARED_MODELS, 'silero-vad', 'silero_vad_16k_op15.onnx'),
  ocrDet: join(SHARED_MODELS, 'paddleocr', 'ch_PP-OCRv4_det_infer.onnx'),
  ocrRec: join(SHARED_MODELS, 'paddleocr', 'ch_PP-OCRv4_rec_infer.onnx'),
  ocrCls: join(SHARED_MODELS, 'paddleocr', 'ch_ppocr_mobile_v2.0_cls_infer.onnx'),
  blazeface: join(SHARED_MODELS, 'blazeface', 'face_detection_front_128x128_barracuda.onnx'),
} as const;
