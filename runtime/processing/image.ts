// Image steps (docs/models.md, "Pipelines"): decode with sharp (libvips), make a model's float
// tensor (resize, channel order, normalisation, layout), cut text-line crops. A decoded image
// is a UINT8 tensor [height, width, 3] (RGB), so it travels between steps like any tensor.
import sharp, { type Metadata, type Sharp } from 'sharp';
import { PerchError } from '../base/errors.js';
import type { Tensor } from '../tensor/tensor.js';

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
 * Decodes a JPEG, PNG or WebP into RGB. The header is read first: an image that would decode to
 * more than `maxPixels` is refused before any pixel is decoded (a 20,000 x 20,000 PNG is a few KB
 * on the wire and 1.2 GB decoded), and sharp's limitInputPixels enforces the same bound again.
 */
export async function decodeImage(input: Tensor, maxPixels: number, to: string): Promise<Tensor> {
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
  try {
    const { data, info } = await sharp(bytes, { limitInputPixels: maxPixels, failOn: 'truncated' })
      .autoOrient()
      .removeAlpha()
      .toColourspace('srgb')
      .raw()
      .toBuffer({ resolveWithObject: true });
    if (info.channels !== 3) throw new Error(`decoded to ${info.channels} channels`);
    return { name: to, datatype: 'UINT8', shape: [info.height, info.width, 3], data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) };
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

/** Bilinear resize of an RGB region [x0, x0+cw) x [y0, y0+ch) of `img` to w x h, optionally turned 180 degrees. */
function resizeRegion(img: Tensor, x0: number, y0: number, cw: number, ch: number, w: number, h: number, rotate: boolean): Uint8Array {
  const { width } = imageSize(img);
  const src = img.data as Uint8Array;
  const out = new Uint8Array(w * h * 3);
  const sx = cw / w;
  const sy = ch / h;
  for (let y = 0; y < h; y++) {
    const fy = Math.min(Math.max((y + 0.5) * sy - 0.5, 0), ch - 1);
    const y1 = Math.floor(fy);
    const y2 = Math.min(y1 + 1, ch - 1);
    const wy = fy - y1;
    for (let x = 0; x < w; x++) {
      const fx = Math.min(Math.max((x + 0.5) * sx - 0.5, 0), cw - 1);
      const x1 = Math.floor(fx);
      const x2 = Math.min(x1 + 1, cw - 1);
      const wx = fx - x1;
      const ty = rotate ? h - 1 - y : y;
      const tx = rotate ? w - 1 - x : x;
      for (let c = 0; c < 3; c++) {
        const p = (yy: number, xx: number): number => src[((y0 + yy) * width + x0 + xx) * 3 + c] as number;
        const v = (p(y1, x1) * (1 - wx) + p(y1, x2) * wx) * (1 - wy) + (p(y2, x1) * (1 - wx) + p(y2, x2) * wx) * wy;
        out[(ty * w + tx) * 3 + c] = Math.round(v);
      }
    }
  }
  return out;
}

/**
 * One crop per box (FP32 [n, 4, 2] corners), each scaled to `height` keeping its aspect ratio,
 * at most `width` wide, zero-padded on the right (PaddleOCR's rec/cls input), as [n, 3, h, w].
 * `rotate[i]` turns crop i 180 degrees (the direction classifier said it is upside down).
 */
export function cropTensor(img: Tensor, boxes: Tensor, height: number, width: number, layout: Layout, rotate: readonly boolean[], to: string): Tensor {
  const size = imageSize(img);
  const n = boxes.shape[0] ?? 0;
  const b = boxes.data as Float32Array;
  const out = new Float32Array(n * 3 * height * width);
  for (let i = 0; i < n; i++) {
    let minX = Infinity, minY = Infinity, maxX = -Infinity, maxY = -Infinity;
    for (let k = 0; k < 4; k++) {
      const x = b[i * 8 + k * 2] as number;
      const y = b[i * 8 + k * 2 + 1] as number;
      minX = Math.min(minX, x); maxX = Math.max(maxX, x); minY = Math.min(minY, y); maxY = Math.max(maxY, y);
    }
    const x0 = Math.max(0, Math.floor(minX));
    const y0 = Math.max(0, Math.floor(minY));
    const cw = Math.max(1, Math.min(size.width, Math.ceil(maxX)) - x0);
    const ch = Math.max(1, Math.min(size.height, Math.ceil(maxY)) - y0);
    const w = Math.max(1, Math.min(width, Math.ceil((height * cw) / ch)));
    const rgb = resizeRegion(img, x0, y0, cw, ch, w, height, rotate[i] === true);
    normalise(rgb, w, height, width, height, layout, to, 1, out, i * 3 * height * width);
  }
  const shape = layout.layout === 'NCHW' ? [n, 3, height, width] : [n, height, width, 3];
  return { name: to, datatype: 'FP32', shape, data: out };
}
