// Streaming the speech sample through Silero VAD as test/fixtures/README.md describes:
// 16 kHz float audio, 512 new samples per chunk after the last 64 of the previous input.
import { readFileSync } from 'node:fs';
import ort from 'onnxruntime-node';
import { SPEECH_SAMPLE } from './paths.js';

export const CHUNK = 512;
export const CONTEXT = 64;
export const SAMPLE_RATE = 16000;

export function loadSpeech(): Float32Array {
  const raw = readFileSync(SPEECH_SAMPLE);
  const out = new Float32Array(raw.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = raw.readInt16LE(i * 2) / 32768;
  return out;
}

/** The [1, 576] inputs of a stream that starts `offset` samples into the audio. */
export function chunkInputs(audio: Float32Array, offset: number): Float32Array[] {
  const chunks: Float32Array[] = [];
  let context: Float32Array = new Float32Array(CONTEXT);
  for (let at = offset; at + CHUNK <= audio.length; at += CHUNK) {
    const input = new Float32Array(CONTEXT + CHUNK);
    input.set(context, 0);
    input.set(audio.subarray(at, at + CHUNK), CONTEXT);
    context = input.slice(CONTEXT + CHUNK - CONTEXT);
    chunks.push(input);
  }
  return chunks;
}

/** The reference: one stream alone through raw onnxruntime, state fed back by hand. */
export async function rawStream(session: ort.InferenceSession, chunks: Float32Array[]): Promise<number[]> {
  let state = new ort.Tensor('float32', new Float32Array(2 * 128), [2, 1, 128]);
  const sr = new ort.Tensor('int64', BigInt64Array.from([BigInt(SAMPLE_RATE)]), []);
  const probs: number[] = [];
  for (const c of chunks) {
    const out = await session.run({ input: new ort.Tensor('float32', c, [1, CONTEXT + CHUNK]), state, sr });
    probs.push((out.output!.data as Float32Array)[0] as number);
    state = out.stateN as typeof state;
  }
  return probs;
}

/**
 * Speech segments in seconds, the way MANIFEST.md reports them: hysteresis (speech starts at
 * p >= 0.5 and ends at the first p < 0.35), then segments under 100 ms (the single-chunk blips
 * MANIFEST mentions near 3.7-3.8 s) are dropped.
 */
export function speechSegments(probs: number[], offsetSamples = 0): Array<[number, number]> {
  const chunkSec = CHUNK / SAMPLE_RATE;
  const t0 = offsetSamples / SAMPLE_RATE;
  const segments: Array<[number, number]> = [];
  let start: number | null = null;
  probs.forEach((p, i) => {
    if (start === null && p >= 0.5) start = i;
    else if (start !== null && p < 0.35) {
      segments.push([start, i]);
      start = null;
    }
  });
  if (start !== null) segments.push([start, probs.length]);
  return segments
    .filter(([a, b]) => (b - a) * chunkSec >= 0.1)
    .map(([a, b]) => [t0 + a * chunkSec, t0 + b * chunkSec]);
}

/** A binary WebSocket infer frame with one VAD chunk of a sequence (the state is Perch's). */
export function vadChunkFrame(id: string, parameters: Record<string, unknown>, input: Float32Array): Buffer {
  const header = Buffer.from(JSON.stringify({
    id, op: 'infer', model: 'silero-vad', parameters,
    inputs: [
      { name: 'input', shape: [1, CONTEXT + CHUNK], datatype: 'FP32', parameters: { binary_data_size: input.byteLength } },
      { name: 'sr', shape: [], datatype: 'INT64', parameters: { binary_data_size: 8 } },
    ],
  }));
  const len = Buffer.alloc(4);
  len.writeUInt32LE(header.length);
  const sr = Buffer.alloc(8);
  sr.writeBigInt64LE(BigInt(SAMPLE_RATE));
  return Buffer.concat([len, header, Buffer.from(input.buffer, input.byteOffset, input.byteLength), sr]);
}
