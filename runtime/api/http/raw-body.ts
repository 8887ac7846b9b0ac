// `POST /v2/models/{m}/infer` with an image or a WAV file as the whole body (docs/api.md, "A file
// as the body"): for people and shell scripts (`curl --data-binary @photo.jpg`). The file becomes
// the one element of the model's BYTES input, and the answer is the usual OIP JSON.
import { PerchError } from '../../base/errors.js';
import type { ResolvedModelConfig } from '../../models/resolve-config.js';
import type { Tensor } from '../../tensor/tensor.js';

/** The media types taken as a raw body; anything else goes the OIP JSON (or binary) way. */
export const RAW_MEDIA_TYPES = ['image/jpeg', 'image/png', 'image/webp', 'audio/wav', 'audio/x-wav', 'audio/wave'] as const;

/** The media type of a Content-Type header, lower case, without its parameters. */
export function mediaType(header: string | undefined): string {
  return (header ?? '').split(';')[0]?.trim().toLowerCase() ?? '';
}

/**
 * True when the body is a file, not an OIP request. Other image and audio types are refused
 * (415) rather than parsed as JSON, which they are not.
 */
export function isRawBody(type: string): boolean {
  if ((RAW_MEDIA_TYPES as readonly string[]).includes(type)) return true;
  if (type.startsWith('image/') || type.startsWith('audio/')) {
    throw new PerchError('PERCH_ERR_MEDIA_UNSUPPORTED', `Content-Type ${type} is not one Perch decodes (${RAW_MEDIA_TYPES.join(', ')})`);
  }
  return false;
}

/** The body as the model's single BYTES input, shaped [1] (or [1, 1] for a batched [-1, 1]). */
export function rawBodyInput(model: ResolvedModelConfig, body: Buffer, type: string): Tensor {
  const spec = model.inputs.length === 1 ? model.inputs[0] : undefined;
  if (!spec || spec.datatype !== 'BYTES') {
    throw new PerchError('PERCH_ERR_MEDIA_UNSUPPORTED', `model '${model.name}' takes no file as its body (it needs one BYTES input; send an OIP request instead)`);
  }
  if (body.length === 0) throw new PerchError('PERCH_ERR_EMPTY_INPUT', `the body is empty: a ${type} file was expected`);
  const shape = spec.dims.map(() => 1);
  return { name: spec.name, datatype: 'BYTES', shape, data: [body] };
}
