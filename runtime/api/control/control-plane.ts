// The control listener, main-thread side (docs/reliability.md "A control listener";
// server.control.* in docs/config.md). The main event loop serves inference, and under a flood
// far past capacity its turns take hundreds of milliseconds; a probe that waits behind them times
// out and the orchestrator restarts a device that is working. This starts a thread with its own
// event loop and HTTP server (worker.ts) and publishes to it what it answers from: a beat every
// BEAT_MS from a timer of the main loop (the loop turns: live) with readiness, and a snapshot of
// /metrics and /v1/status every snapshotIntervalMs.
import { Worker } from 'node:worker_threads';
import { PerchError, type ErrorCode } from '../../base/errors.js';
import type { Logger } from '../../base/log.js';
import type { PerchConfig } from '../../config/schema.js';
import { guardOptionsFor, type RequestGuardOptions } from '../request-guard.js';
import { parseSocketMode, removeSocketFile } from '../unix-socket.js';
import type { ControlWorkerData, ListenMessage, SnapshotMessage } from './messages.js';
import { ControlState } from './shared-state.js';

const WORKER_URL = new URL('./worker.js', import.meta.url);
/** How often the main loop beats: the liveness answer is this much behind the loop at worst. */
const BEAT_MS = 250;
/** The thread gets this long to close its connections on stop before it is terminated. */
const STOP_GRACE_MS = 2000;

export interface ControlPlaneOptions {
  host: string;
  port: number | null;
  socketPath: string | null;
  socketMode: number;
  maxLoopStallMs: number;
  snapshotIntervalMs: number;
  apiToken: string | null;
  guard: RequestGuardOptions;
  /** ModelRegistry.isReady: what /v2/health/ready says on the main port. */
  ready: () => boolean;
  metrics: { metrics(): Promise<string>; contentType: string };
  status: () => unknown;
  log: Logger;
}

/** What the control listener takes from the runtime; the rest comes from config.server. */
export type ControlPlaneDeps = Pick<ControlPlaneOptions, 'apiToken' | 'ready' | 'metrics' | 'status' | 'log'>;

/**
 * The control listener config.server asks for (server.control.port or .socketPath, docs/config.md),
 * listening on the main port's host with its token and Host/Origin rules; null when it is off.
 */
export function controlPlaneFor(server: PerchConfig['server'], deps: ControlPlaneDeps): ControlPlane | null {
  const c = server.control;
  if (c.port === null && c.socketPath === null) return null;
  return new ControlPlane({
    host: server.host, port: c.port, socketPath: c.socketPath, socketMode: parseSocketMode(server.socketMode),
    maxLoopStallMs: c.maxLoopStallMs, snapshotIntervalMs: c.snapshotIntervalMs,
    guard: guardOptionsFor(server),
    ...deps,
  });
}

export class ControlPlane {
  private readonly state = new ControlState();
  private worker: Worker | null = null;
  private beatTimer: NodeJS.Timeout | null = null;
  private snapshotTimer: NodeJS.Timeout | null = null;
  private snapshotting = false;
  private tcpPort: number | null = null;

  constructor(private readonly opts: ControlPlaneOptions) {}

  /** The TCP port the control listener got (server.control.port 0 = any free port), or null. */
  get port(): number | null {
    return this.tcpPort;
  }

  async start(): Promise<void> {
    const o = this.opts;
    // Beating from now: the thread takes a while to start, and must not find the beat stale.
    this.beat();
    this.beatTimer = setInterval(() => this.beat(), BEAT_MS);
    this.beatTimer.unref();
    const data: ControlWorkerData & { snapshot: SnapshotMessage } = {
      state: this.state.buffer, host: o.host, port: o.port, socketPath: o.socketPath, socketMode: o.socketMode,
      maxLoopStallMs: o.maxLoopStallMs, apiToken: o.apiToken, guard: o.guard, snapshot: await this.snapshot(),
    };
    const worker = (this.worker = new Worker(WORKER_URL, { workerData: data }));
    const result = await new Promise<ListenMessage>((resolve, reject) => {
      worker.once('message', resolve);
      worker.once('error', reject);
      worker.once('exit', (code) => reject(new PerchError('PERCH_ERR_INTERNAL', `the control listener's thread exited (${code}) before listening`)));
    });
    worker.removeAllListeners();
    if (result.type === 'failed') {
      clearInterval(this.beatTimer);
      await worker.terminate();
      this.worker = null;
      throw new PerchError(result.code as ErrorCode, result.message);
    }
    this.tcpPort = result.port;
    worker.on('error', (err) => o.log.error({ err }, 'the control listener failed'));
    this.snapshotTimer = setInterval(() => void this.pushSnapshot(), o.snapshotIntervalMs);
    this.snapshotTimer.unref();
  }

  async stop(): Promise<void> {
    if (this.beatTimer) clearInterval(this.beatTimer);
    if (this.snapshotTimer) clearInterval(this.snapshotTimer);
    const worker = this.worker;
    this.worker = null;
    if (!worker) return;
    const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
    worker.postMessage({ type: 'stop' });
    const grace = setTimeout(() => void worker.terminate(), STOP_GRACE_MS);
    await exited;
    clearTimeout(grace);
    if (this.opts.socketPath !== null) removeSocketFile(this.opts.socketPath);
  }

  private beat(): void {
    this.state.beat(this.opts.ready());
  }

  private async snapshot(): Promise<SnapshotMessage> {
    const metrics = await this.opts.metrics.metrics();
    return { type: 'snapshot', metrics, metricsContentType: this.opts.metrics.contentType, status: this.opts.status() };
  }

  private async pushSnapshot(): Promise<void> {
    if (this.snapshotting || !this.worker) return;
    this.snapshotting = true;
    try {
      const s = await this.snapshot();
      this.worker?.postMessage(s);
    } catch (err) {
      this.opts.log.warn({ err }, 'control listener: metrics snapshot failed');
    } finally {
      this.snapshotting = false;
    }
  }
}
