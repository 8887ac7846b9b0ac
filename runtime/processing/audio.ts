// WAV decoding (RIFF/WAVE: PCM 16-bit or IEEE float 32-bit, also in WAVE_FORMAT_EXTENSIBLE),
// mixed down to mono and resampled (linear) to the model's rate. The header is checked before
// any sample is converted: the declared length bounds the memory a clip costs.
import { PerchError } from '../base/errors.js';
import type { Tensor } from '../tensor/tensor.js';
import { onlyElement } from './image.js';

const PCM = 1;
const FLOAT = 3;
const EXTENSIBLE = 0xfffe;

function invalid(msg: string): PerchError {
  return new PerchError('PERCH_ERR_AUDIO_INVALID', msg);
}

interface Format { format: number; channels: number; rate: number; bits: number }

function readFormat(v: DataView, at: number, size: number): Format {
  if (size < 16) throw invalid('the WAV fmt chunk is shorter than 16 bytes');
  let format = v.getUint16(at, true);
  const channels = v.getUint16(at + 2, true);
  const rate = v.getUint32(at + 4, true);
  const bits = v.getUint16(at + 14, true);
  // WAVE_FORMAT_EXTENSIBLE keeps the real format in the first two bytes of its SubFormat GUID.
  if (format === EXTENSIBLE && size >= 26) format = v.getUint16(at + 24, true);
  return { format, channels, rate, bits };
}

/** Mono FP32 [samples] in [-1, 1] at `sampleRate`. */
export function decodeWav(input: Tensor, sampleRate: number, maxSeconds: number, to: string): Tensor {
  const file = onlyElement(input, 'WAV');
  const v = new DataView(file.buffer, file.byteOffset, file.byteLength);
  const tag = (at: number): string => String.fromCharCode(file[at] ?? 0, file[at + 1] ?? 0, file[at + 2] ?? 0, file[at + 3] ?? 0);
  if (file.byteLength < 12 || tag(0) !== 'RIFF' || tag(8) !== 'WAVE') throw invalid(`input '${input.name}' is not a WAV file (no RIFF/WAVE header)`);
  let fmt: Format | null = null;
  let data: { at: number; size: number } | null = null;
  for (let at = 12; at + 8 <= file.byteLength && !data;) {
    const id = tag(at);
    const size = v.getUint32(at + 4, true);
    const body = at + 8;
    if (id === 'fmt ') {
      if (body + size > file.byteLength) throw invalid('the WAV file is truncated in its fmt chunk');
      fmt = readFormat(v, body, size);
    } else if (id === 'data') {
      data = { at: body, size };
    }
    at = body + size + (size & 1); // chunks are padded to even sizes
  }
  if (!fmt) throw invalid(`input '${input.name}': the WAV file has no fmt chunk before its data`);
  if (!data) throw invalid(`input '${input.name}': the WAV file has no data chunk`);
  const ok = (fmt.format === PCM && fmt.bits === 16) || (fmt.format === FLOAT && fmt.bits === 32);
  if (!ok) {
    throw new PerchError('PERCH_ERR_AUDIO_UNSUPPORTED', `input '${input.name}': WAV format ${fmt.format} with ${fmt.bits}-bit samples; PCM 16-bit and float 32-bit are decoded`);
  }
  if (fmt.channels < 1 || fmt.channels > 16 || fmt.rate < 1000 || fmt.rate > 384_000) {
    throw new PerchError('PERCH_ERR_AUDIO_UNSUPPORTED', `input '${input.name}': ${fmt.channels} channels at ${fmt.rate} Hz is not decoded`);
  }
  const frameBytes = (fmt.bits / 8) * fmt.channels;
  if (data.at + data.size > file.byteLength) throw invalid(`input '${input.name}': the WAV data chunk declares ${data.size} bytes, ${file.byteLength - data.at} are there (truncated)`);
  const frames = Math.floor(data.size / frameBytes);
  if (frames / fmt.rate > maxSeconds) {
    throw new PerchError('PERCH_ERR_AUDIO_UNSUPPORTED', `input '${input.name}' is ${(frames / fmt.rate).toFixed(1)} s long, over the model's ${maxSeconds} s`);
  }
  const mono = new Float32Array(frames);
  for (let i = 0; i < frames; i++) {
    let s = 0;
    for (let c = 0; c < fmt.channels; c++) {
      const at = data.at + i * frameBytes + c * (fmt.bits / 8);
      s += fmt.bits === 16 ? v.getInt16(at, true) / 32768 : v.getFloat32(at, true);
    }
    mono[i] = s / fmt.channels;
  }
  const out = fmt.rate === sampleRate ? mono : resample(mono, fmt.rate, sampleRate);
  return { name: to, datatype: 'FP32', shape: [out.length], data: out };
}

/** Linear-interpolation resampling. */
export function resample(x: Float32Array, from: number, to: number): Float32Array {
  const n = Math.floor((x.length * to) / from);
  const out = new Float32Array(n);
  const step = from / to;
  for (let i = 0; i < n; i++) {
    const p = i * step;
    const j = Math.floor(p);
    const f = p - j;
    out[i] = (x[j] as number) * (1 - f) + (x[Math.min(j + 1, x.length - 1)] as number) * f;
  }
  return out;
}
