// Speech segments of a whole clip with a Silero VAD model called through its batcher: 512-sample
// chunks (256 at 8 kHz) after 64 samples (32) of context, the state fed back, then the
// hysteresis of Silero's get_speech_timestamps: speech starts at >= threshold, ends after
// minSilenceMs below negThreshold; segments shorter than minSpeechMs are dropped.
import type { PipelineStep } from '../models/pipeline-config.js';
import type { Tensor } from '../tensor/tensor.js';
import type { ModelCaller } from './model-caller.js';

type VadStep = Extract<PipelineStep, { op: 'vad.segments' }>;

/** Speech probability of each chunk, in order (calls are sequential: each needs the last state). */
async function probabilities(s: VadStep, audio: Float32Array, call: ModelCaller): Promise<{ probs: number[]; chunk: number }> {
  const chunk = s.sampleRate === 16000 ? 512 : 256;
  const context = s.sampleRate === 16000 ? 64 : 32;
  let state = new Float32Array(2 * 128);
  const probs: number[] = [];
  for (let at = 0; at < audio.length; at += chunk) {
    const input = new Float32Array(context + chunk);
    input.set(audio.subarray(Math.max(0, at - context), at), context - Math.min(context, at));
    input.set(audio.subarray(at, Math.min(audio.length, at + chunk)), context);
    const out = await call(s.model, [
      { name: 'input', datatype: 'FP32', shape: [1, context + chunk], data: input },
      { name: 'state', datatype: 'FP32', shape: [2, 1, 128], data: state },
      // Fresh each call: a session thread takes the buffers it is given.
      { name: 'sr', datatype: 'INT64', shape: [], data: BigInt64Array.from([BigInt(s.sampleRate)]) },
    ]);
    const p = out.find((t) => t.name === 'output');
    const next = out.find((t) => t.name === 'stateN');
    probs.push((p?.data as Float32Array | undefined)?.[0] ?? 0);
    state = Float32Array.from(next?.data as Float32Array);
  }
  return { probs, chunk };
}

/** Segments FP32 [n, 2]: start and end of each speech segment, in seconds. */
export async function vadSegments(s: VadStep, audio: Tensor, call: ModelCaller): Promise<Tensor> {
  const samples = audio.data as Float32Array;
  const { probs, chunk } = await probabilities(s, samples, call);
  const minSilence = (s.minSilenceMs * s.sampleRate) / 1000;
  const minSpeech = (s.minSpeechMs * s.sampleRate) / 1000;
  const segments: number[] = [];
  let start = -1;
  let silenceFrom = -1;
  const close = (end: number): void => {
    if (end - start >= minSpeech) segments.push(start / s.sampleRate, end / s.sampleRate);
    start = -1;
    silenceFrom = -1;
  };
  probs.forEach((p, i) => {
    const at = i * chunk;
    if (p >= s.threshold) {
      silenceFrom = -1;
      if (start < 0) start = at;
    } else if (start >= 0 && p < s.negThreshold) {
      if (silenceFrom < 0) silenceFrom = at;
      if (at + chunk - silenceFrom >= minSilence) close(silenceFrom);
    }
  });
  if (start >= 0) close(silenceFrom >= 0 ? silenceFrom : samples.length);
  return { name: s.to, datatype: 'FP32', shape: [segments.length / 2, 2], data: Float32Array.from(segments) };
}
