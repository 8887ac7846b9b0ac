// Image steps (docs/models.md, "Pipelines"): decode with sharp (libvips), make a model's float
// tensor (resize, channel order, normalisation, layout), cut text-line crops. A decoded image
// is a UINT8 tensor [height, width, 3] (RGB), so it travels between steps like any tensor.
import sharp, { type Metadata, type Sharp } from 'sharp';
import { PerchError } from '../base/errors.js';
import type { Tensor } from '../tensor/tensor.js';
import type { Point } from './rotated-rect.js';

// Each processing thread runs one image at a time: the pool, not libvips, spreads the work over
// the cores, and libvips' cache would only hold memory between unrelated requests.
sharp.concurrency(1);
sharp.cache(false);

const FORMATS = new Set(['jpeg', 'png', 'webp']);

export interface Layout {
  colour: 'RGB' | 'BGR';
  mean: [number, number, number];
  std: [number, number, number];
  layout: 'NCHW' | 'NHWC';
}

/** The one file of a BYTES tensor (the request's input). */
export function onlyElement(t: Tensor, what: string): Uint8Array {
  if (!Array.isArray(t.data) || t.data.length !== 1) {
    throw new PerchError('PERCH_ERR_SHAPE_MISMATCH', `input '${t.name}': one BYTES element (the ${what} file) is expected`);
  }
  const file = t.data[0] as Uint8Array;
  if (file.byteLength === 0) throw new PerchError('PERCH_ERR_EMPTY_INPUT', `input '${t.name}': the ${what} file is empty (0 bytes)`);
  return file;
}

/**
 * Reads an image's header (no pixel decoded): its size, checked against `maxPixels`. A 20,000 x
 * 20,000 PNG is a few KB on the wire and 1.2 GB decoded, so it is refused here. The pipeline runs
 * this before decoding to take the image's pixels from the process-wide budget
 * (runtime/pipelines/pixel-budget.ts).
 */
export async function probeImage(input: Tensor, maxPixels: number): Promise<{ width: number; height: number }> {
  const file = onlyElement(input, 'image');
  const bytes = Buffer.from(file.buffer, file.byteOffset, file.byteLength);
  let meta: Metadata;
  try {
    meta = await sharp(bytes, { limitInputPixels: false }).metadata();
  } catch (err) {
    throw new PerchError('PERCH_ERR_IMAGE_INVALID', `input '${input.name}' is not a JPEG, PNG or WebP image: ${(err as Error).message}`);
  }
  if (!meta.format || !FORMATS.has(meta.format)) {
    throw new PerchError('PERCH_ERR_IMAGE_INVALID', `input '${input.name}' is a ${meta.format ?? 'unknown'} file; JPEG, PNG and WebP are decoded`);
  }
  const { width, height } = meta;
  if (!width || !height) throw new PerchError('PERCH_ERR_IMAGE_INVALID', `input '${input.name}': the image header gives no size`);
  if (width * height > maxPixels) {
    throw new PerchError('PERCH_ERR_IMAGE_TOO_LARGE', `input '${input.name}' is ${width} x ${height} = ${width * height} pixels, over the limit of ${maxPixels}`);
  }
  return { width, height };
}

/**
 * Decodes a JPEG, PNG or WebP into RGB, after probeImage's checks (sharp's limitInputPixels
 * enforces the same bound again). The pixels are put in a SharedArrayBuffer: the later steps
 * (resize, regions, crops) run on processing threads too, and a plain buffer sent to them was
 * copied whole for each (4 x 119 MB for a 39.7 Mpx image through `ocr`); shared, it is sent as is.
 */
export async function decodeImage(input: Tensor, maxPixels: number, to: string): Promise<Tensor> {
  await probeImage(input, maxPixels);
  const file = onlyElement(input, 'image');
  const bytes = Buffer.from(file.buffer, file.byteOffset, file.byteLength);
  try {
    const { data, info } = await sharp(bytes, { limitInputPixels: maxPixels, failOn: 'truncated' })
      .autoOrient()
      .removeAlpha()
      .toColourspace('srgb')
      .raw()
      .toBuffer({ resolveWithObject: true });
    if (info.channels !== 3) throw new Error(`decoded to ${info.channels} channels`);
    const pixels = new Uint8Array(new SharedArrayBuffer(data.byteLength));
    pixels.set(data);
    return { name: to, datatype: 'UINT8', shape: [info.height, info.width, 3], data: pixels };
  } catch (err) {
    throw new PerchError('PERCH_ERR_IMAGE_INVALID', `input '${input.name}' could not be decoded (truncated or corrupt): ${(err as Error).message}`);
  }
}

export function imageSize(t: Tensor): { width: number; height: number } {
  if (t.datatype !== 'UINT8' || t.shape.length !== 3 || t.shape[2] !== 3) {
    throw new PerchError('PERCH_ERR_INTERNAL', `'${t.name}' is not a decoded image (UINT8 [h, w, 3])`);
  }
  return { height: t.shape[0] as number, width: t.shape[1] as number };
}

function rawOf(img: Tensor): Sharp {
  const { width, height } = imageSize(img);
  const d = img.data as Uint8Array;
  return sharp(Buffer.from(d.buffer, d.byteOffset, d.byteLength), { raw: { width, height, channels: 3 } });
}

/** The size an image is resized to for a model input. */
export function targetSize(
  src: { width: number; height: number },
  resize: 'stretch' | 'fit32' | 'letterbox',
  width: number | undefined,
  height: number | undefined,
  maxSide: number,
): { width: number; height: number; inner: { width: number; height: number } } {
  if (resize === 'fit32') {
    // PaddleOCR's det resize: longest side at most maxSide, each side a multiple of 32 (>= 32).
    const ratio = Math.min(1, maxSide / Math.max(src.width, src.height));
    const w = Math.max(32, Math.round((src.width * ratio) / 32) * 32);
    const h = Math.max(32, Math.round((src.height * ratio) / 32) * 32);
    return { width: w, height: h, inner: { width: w, height: h } };
  }
  if (!width || !height) throw new PerchError('PERCH_ERR_MODEL_CONFIG_INVALID', `resize '${resize}' needs width and height`);
  if (resize === 'stretch') return { width, height, inner: { width, height } };
  const s = Math.min(width / src.width, height / src.height);
  return { width, height, inner: { width: Math.max(1, Math.round(src.width * s)), height: Math.max(1, Math.round(src.height * s)) } };
}

/** Resizes a decoded image and lays it out as a float tensor [1, 3, h, w] or [1, h, w, 3]. */
export async function imageTensor(
  img: Tensor,
  opts: Layout & { resize: 'stretch' | 'fit32' | 'letterbox'; width?: number | undefined; height?: number | undefined; maxSide: number },
  to: string,
): Promise<Tensor> {
  const size = targetSize(imageSize(img), opts.resize, opts.width, opts.height, opts.maxSide);
  const { data } = await rawOf(img).resize(size.inner.width, size.inner.height, { fit: 'fill' }).raw().toBuffer({ resolveWithObject: true });
  // Letterbox: the image at the top left, the rest zeros (the coordinates then need no offset).
  return normalise(data, size.inner.width, size.inner.height, size.width, size.height, opts, to);
}

/**
 * RGB bytes (w x h) into a zero-filled float tensor of padW x padH at the top left, with the
 * channel order, (v/255 - mean)/std and layout asked for.
 */
export function normalise(rgb: Uint8Array, w: number, h: number, padW: number, padH: number, o: Layout, to: string, count = 1, into?: Float32Array, at = 0): Tensor {
  const out = into ?? new Float32Array(count * 3 * padW * padH);
  const order = o.colour === 'BGR' ? [2, 1, 0] : [0, 1, 2];
  const plane = padW * padH;
  for (let c = 0; c < 3; c++) {
    const src = order[c] as number;
    const scale = 1 / (255 * o.std[c]!);
    const shift = o.mean[c]! / o.std[c]!;
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        const v = (rgb[(y * w + x) * 3 + src] as number) * scale - shift;
        if (o.layout === 'NCHW') out[at + c * plane + y * padW + x] = v;
        else out[at + (y * padW + x) * 3 + c] = v;
      }
    }
  }
  const shape = o.layout === 'NCHW' ? [count, 3, padH, padW] : [count, padH, padW, 3];
  return { name: to, datatype: 'FP32', shape, data: out };
}

/**
 * Bilinear samples of `img` on a w x h grid spanning the parallelogram with corner `o` and sides
 * o->u (the crop's x axis) and o->v (its y axis), in pixel coordinates: a crop cut along a
 * tilted box, turned as the box says.
 */
function sampleAlong(img: Tensor, o: Point, u: Point, v: Point, w: number, h: number): Uint8Array {
  const { width, height } = imageSize(img);
  const src = img.data as Uint8Array;
  const out = new Uint8Array(w * h * 3);
  const ux = (u[0] - o[0]) / w, uy = (u[1] - o[1]) / w;
  const vx = (v[0] - o[0]) / h, vy = (v[1] - o[1]) / h;
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      // The centre of output pixel (x, y), in source pixel coordinates (centres at +0.5).
      const fx = Math.min(Math.max(o[0] + (x + 0.5) * ux + (y + 0.5) * vx - 0.5, 0), width - 1);
      const fy = Math.min(Math.max(o[1] + (x + 0.5) * uy + (y + 0.5) * vy - 0.5, 0), height - 1);
      const x1 = Math.floor(fx), y1 = Math.floor(fy);
      const x2 = Math.min(x1 + 1, width - 1), y2 = Math.min(y1 + 1, height - 1);
      const wx = fx - x1, wy = fy - y1;
      const r1 = y1 * width, r2 = y2 * width;
      for (let c = 0; c < 3; c++) {
        const v11 = src[(r1 + x1) * 3 + c] as number, v12 = src[(r1 + x2) * 3 + c] as number;
        const v21 = src[(r2 + x1) * 3 + c] as number, v22 = src[(r2 + x2) * 3 + c] as number;
        out[(y * w + x) * 3 + c] = Math.round((v11 * (1 - wx) + v12 * wx) * (1 - wy) + (v21 * (1 - wx) + v22 * wx) * wy);
      }
    }
  }
  return out;
}

const dist = (a: Point, b: Point): number => Math.hypot(a[0] - b[0], a[1] - b[1]);

/**
 * One crop per box (FP32 [n, 4, 2] corners clockwise from the top left), cut along the box (a
 * tilted line comes out level), scaled to `height` keeping its aspect ratio, at most `width` wide,
 * zero-padded on the right (PaddleOCR's rec/cls input), as [n, 3, h, w]. A box at least 1.5 times
 * as tall as wide is a vertical line and is turned a quarter left, as PaddleOCR's
 * get_rotate_crop_image does. `rotate[i]` turns crop i 180 degrees (the direction classifier said
 * it is upside down).
 */
export function cropTensor(img: Tensor, boxes: Tensor, height: number, width: number, layout: Layout, rotate: readonly boolean[], to: string): Tensor {
  const n = boxes.shape[0] ?? 0;
  const b = boxes.data as Float32Array;
  const out = new Float32Array(n * 3 * height * width);
  for (let i = 0; i < n; i++) {
    const p = (k: number): Point => [b[i * 8 + k * 2] as number, b[i * 8 + k * 2 + 1] as number];
    const [tl, tr, br, bl] = [p(0), p(1), p(2), p(3)];
    const boxW = Math.max(dist(tl, tr), dist(bl, br));
    const boxH = Math.max(dist(tl, bl), dist(tr, br));
    const vertical = boxH >= 1.5 * boxW;
    // The crop's corner and its x and y axes, as corners of the box: level, turned a quarter left
    // for a vertical line, and turned half round on top of that when the classifier says so.
    let [o, u, v] = vertical ? [tr, br, tl] : [tl, tr, bl];
    if (rotate[i] === true) [o, u, v] = vertical ? [bl, tl, br] : [br, bl, tr];
    const cw = Math.max(1, dist(o, u));
    const ch = Math.max(1, dist(o, v));
    const w = Math.max(1, Math.min(width, Math.ceil((height * cw) / ch)));
    const rgb = sampleAlong(img, o, u, v, w, height);
    normalise(rgb, w, height, width, height, layout, to, 1, out, i * 3 * height * width);
  }
  const shape = layout.layout === 'NCHW' ? [n, 3, height, width] : [n, height, width, 3];
  return { name: to, datatype: 'FP32', shape, data: out };
}
