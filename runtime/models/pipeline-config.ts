// The `pipeline` section of model.json (docs/models.md, "Pipelines"): a model made of named steps
// instead of an ONNX file. Each step reads named values (tensors) and writes new ones; a `model`
// step calls another model of the repository through that model's own batcher.
import { z } from 'zod';
import { isPlainFileName } from './folder-file.js';

const name = z.string().min(1);
const triple = z.tuple([z.number(), z.number(), z.number()]);
/** A file of the model folder: a name, never a path (folder-file.ts). */
const folderFileName = z.string().refine(isPlainFileName, 'a file name in the model folder, not a path');
const positiveInt = z.number().int().min(1);

/** How an image becomes a float tensor: size, channel order, normalisation, layout. */
const tensorLayout = {
  /** Channel order of the tensor (PaddleOCR models were trained on OpenCV's BGR). */
  colour: z.enum(['RGB', 'BGR']).default('RGB'),
  /** (v/255 - mean[c]) / std[c], per channel in the tensor's colour order. */
  mean: triple.default([0, 0, 0]),
  std: triple.default([1, 1, 1]),
  layout: z.enum(['NCHW', 'NHWC']).default('NCHW'),
};

export const stepSchema = z.discriminatedUnion('op', [
  z.strictObject({
    name, op: z.literal('image.decode'), from: name, to: name,
    /** Images whose header declares more pixels are refused before decoding (PERCH_ERR_IMAGE_TOO_LARGE). */
    maxPixels: positiveInt.max(268_402_689).default(40_000_000),
  }),
  z.strictObject({
    name, op: z.literal('image.tensor'), from: name, to: name,
    /**
     * stretch: exactly width x height; fit32: keep the aspect ratio, longest side at most
     * maxSide, both sides rounded to multiples of 32 (DB text detectors); letterbox: fit inside
     * width x height, pad the rest with zeros.
     */
    resize: z.enum(['stretch', 'fit32', 'letterbox']),
    width: positiveInt.max(4096).optional(),
    height: positiveInt.max(4096).optional(),
    maxSide: positiveInt.max(4096).default(960),
    ...tensorLayout,
  }),
  z.strictObject({
    name, op: z.literal('image.crops'), from: name, boxes: name, to: name,
    /** Each box cut out, scaled to `height` keeping its aspect ratio (at most `width`), right-padded with zeros to `width`. */
    height: positiveInt.max(1024), width: positiveInt.max(4096),
    /** Rotate a crop 180 degrees when this classifier output (one row per box) gives class `class` at least `threshold`. */
    rotate180: z.strictObject({ from: name, class: z.number().int().min(0), threshold: z.number().min(0).max(1).default(0.9) }).optional(),
    ...tensorLayout,
  }),
  z.strictObject({
    name, op: z.literal('model'), model: name,
    /** The model's input name -> the value fed to it. */
    inputs: z.record(z.string(), name),
    /** The model's output name -> the value it becomes. */
    outputs: z.record(z.string(), name),
    /** Split the inputs along axis 0 and call the model once per item, all at once: items of concurrent requests batch together. */
    each: z.boolean().default(false),
  }),
  z.strictObject({
    name, op: z.literal('text.regions'), from: name, image: name, to: name, scores: name,
    threshold: z.number().min(0).max(1).default(0.3),
    boxThreshold: z.number().min(0).max(1).default(0.6),
    unclipRatio: z.number().min(0).max(10).default(1.5),
    minSize: z.number().min(0).default(3),
    maxRegions: positiveInt.max(1000).default(100),
  }),
  z.strictObject({
    name, op: z.literal('ctc.greedy'), from: name, to: name, confidence: name,
    /** Dictionary file in the model folder: line i is class i + 1 (0 is the CTC blank). */
    keys: folderFileName,
    /** The class after the last key is a space (PaddleOCR's use_space_char). */
    spaceAfterKeys: z.boolean().default(true),
  }),
  z.strictObject({
    name, op: z.literal('classify.topk'), from: name, to: name, scores: name,
    /** Labels file in the model folder, one label per line. */
    labels: folderFileName,
    k: positiveInt.max(1000).default(5),
    /** Apply softmax to the row first (the model outputs logits). */
    softmax: z.boolean().default(false),
  }),
  z.strictObject({
    name, op: z.literal('blazeface.decode'), scores: z.tuple([name, name]), regressors: z.tuple([name, name]), image: name,
    to: name, keypoints: name, confidences: name,
    inputSize: positiveInt.default(128),
    /** The resize of the step that made the model's input (image.tensor): to map boxes back. */
    resize: z.enum(['stretch', 'letterbox']).default('stretch'),
    scoreThreshold: z.number().min(0).max(1).default(0.5),
    iouThreshold: z.number().min(0).max(1).default(0.3),
    maxFaces: positiveInt.max(1000).default(100),
  }),
  z.strictObject({
    name, op: z.literal('audio.decode'), from: name, to: name,
    /** Samples per second of the tensor (the WAV is resampled to it). */
    sampleRate: positiveInt.max(192_000),
    /** Longest clip taken, in seconds (PERCH_ERR_AUDIO_UNSUPPORTED beyond it). */
    maxSeconds: z.number().positive().max(3600).default(600),
  }),
  z.strictObject({
    name, op: z.literal('vad.segments'), from: name, to: name, model: name,
    sampleRate: z.union([z.literal(8000), z.literal(16000)]).default(16000),
    threshold: z.number().min(0).max(1).default(0.5),
    negThreshold: z.number().min(0).max(1).default(0.35),
    minSpeechMs: z.number().min(0).default(250),
    minSilenceMs: z.number().min(0).default(100),
  }),
]);

export const pipelineSchema = z.strictObject({
  steps: z.array(stepSchema).min(1),
  /** Requests run through the pipeline at once (the batcher's concurrency for this model). */
  concurrency: positiveInt.max(256).default(16),
});

export type PipelineStep = z.infer<typeof stepSchema>;
export type PipelineConfig = z.infer<typeof pipelineSchema>;
