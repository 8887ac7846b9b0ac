// Raw onnxruntime-node in the benchmark process: the baseline every Perch figure is divided by.
// Same session options as Perch's (runtime/sessions/ort-session.ts with the shipped model.json).
import ort from 'onnxruntime-node';
import { toOrtFeeds } from '../../runtime/sessions/ort-session.js';
import type { Tensor } from '../../runtime/tensor/tensor.js';
import { disableOrtTelemetry } from '../../runtime/sessions/ort-telemetry.js';

// Raw sessions run as Perch's do: without ORT's telemetry (runtime/sessions/ort-telemetry.ts).
disableOrtTelemetry();

export const RAW_SESSION_OPTIONS: ort.InferenceSession.SessionOptions = {
  intraOpNumThreads: 1,
  interOpNumThreads: 1,
  executionMode: 'sequential',
  graphOptimizationLevel: 'all',
  executionProviders: ['cpu'],
  logSeverityLevel: 3,
};

export function openRaw(file: string): Promise<ort.InferenceSession> {
  return ort.InferenceSession.create(file, RAW_SESSION_OPTIONS);
}

/** One plain session.run; ort.Tensor objects are made per call, as any caller would. */
export async function runRaw(session: ort.InferenceSession, inputs: readonly Tensor[]): Promise<ort.InferenceSession.ReturnType> {
  return session.run(toOrtFeeds(inputs));
}

export function ortVersion(): string {
  return ort.env.versions.common ?? 'unknown';
}
