// Messages between the main thread and the control listener's thread (control-plane.ts,
// worker.ts). Plain data: they cross threads by structured clone.
import type { RequestGuardOptions } from '../request-guard.js';

export interface ControlWorkerData {
  state: SharedArrayBuffer;
  host: string;
  /** TCP port (0 = any free port), or null for none. */
  port: number | null;
  socketPath: string | null;
  socketMode: number;
  /** The main loop fails liveness when it has not beaten for this long (server.control.maxLoopStallMs). */
  maxLoopStallMs: number;
  apiToken: string | null;
  guard: RequestGuardOptions;
}

/** Main -> control thread: what /metrics and /v1/status answer until the next snapshot. */
export interface SnapshotMessage {
  type: 'snapshot';
  metrics: string;
  metricsContentType: string;
  status: unknown;
}

/** Control thread -> main: listening (the TCP port it got), or why it could not. */
export type ListenMessage =
  | { type: 'listening'; port: number | null }
  | { type: 'failed'; code: string; message: string };
