// One configuration of bench/session-thread.ts, in a process of its own (forked with an IPC
// channel) and, for the thread configurations, on a worker thread of that process too (the same
// file is the worker's entry). It opens PP-OCR cls as raw onnxruntime-node (bench/lib/raw-ort.ts:
// Perch's session options) and runs it when the parent asks for a round, measuring each
// `session.run` on the thread that runs it, as Perch's session thread does
// (runtime/sessions/session-worker.ts): wall time, the process's CPU time and minor page faults
// during the run (getrusage: the other threads of the probe are asleep while it runs, so this is
// the running thread's; /proc/thread-self/schedstat is only brought up to date at scheduler
// ticks, too coarse for a 2 ms run).
import { join } from 'node:path';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import type ort from 'onnxruntime-node';
import { clsInput } from '../../test/helpers/models.js';
import { SHIPPED_MODELS } from '../../test/helpers/paths.js';
import { openRaw, runRaw } from './raw-ort.js';
import type { Tensor } from '../../runtime/tensor/tensor.js';

export type Pause = 'none' | 'sleep' | 'spin';

export interface ProbeConfig {
  name: string;
  /** Where session.run runs: this process's main thread, or a worker thread of it. */
  thread: 'main' | 'worker';
  /**
   * 'loop': the thread runs its runs by itself; 'hop': as in Perch, the main thread posts each
   * run's input to the worker (copied, as Perch's ownedFeeds) and waits for its answer.
   */
  drive: 'loop' | 'hop';
  /** Between runs: nothing, the thread asleep (its core may go idle), or busy spinning. */
  pause: Pause;
  pauseMs: number;
  /** Shipped models opened on idle worker threads beside it, as `perch serve` holds them. */
  otherSessions: string[];
}

export interface RunSample {
  wallMs: number;
  cpuMs: number;
  /** Minor page faults during the run (fresh memory touched for the first time). */
  faults: number;
}

const MODEL_FILE = join(SHIPPED_MODELS, 'pp-ocr-cls', '1', 'model.onnx');


const pauseFlag = new Int32Array(new SharedArrayBuffer(4));
function pause(kind: Pause, ms: number): void {
  if (kind === 'sleep') Atomics.wait(pauseFlag, 0, 0, ms); // the thread sleeps; nothing notifies it
  else if (kind === 'spin') {
    const end = performance.now() + ms;
    while (performance.now() < end) {
      // keep the core busy
    }
  }
}

async function timedRun(session: ort.InferenceSession, input: readonly Tensor[]): Promise<RunSample> {
  const r0 = process.resourceUsage();
  const t = performance.now();
  await runRaw(session, input);
  const wallMs = performance.now() - t;
  const r1 = process.resourceUsage();
  const cpuMs = (r1.userCPUTime + r1.systemCPUTime - r0.userCPUTime - r0.systemCPUTime) / 1000;
  return { wallMs, cpuMs, faults: r1.minorPageFault - r0.minorPageFault };
}

async function loop(session: ort.InferenceSession, inputs: Tensor[][], runs: number, kind: Pause, ms: number): Promise<RunSample[]> {
  const out: RunSample[] = [];
  for (let i = 0; i < runs; i++) {
    pause(kind, ms);
    out.push(await timedRun(session, inputs[i % inputs.length]!));
  }
  return out;
}

const inputs = Array.from({ length: 8 }, (_, k) => clsInput(k));

type ToWorker = { type: 'loop'; runs: number; pause: Pause; pauseMs: number } | { type: 'run'; input: Tensor[] };

if (!isMainThread) {
  // A worker thread: the session under test, or one of the idle other sessions.
  const { file } = workerData as { file: string };
  const session = await openRaw(file);
  const port = parentPort!;
  port.on('message', (m: ToWorker) => {
    if (m.type === 'loop') void loop(session, inputs, m.runs, m.pause, m.pauseMs).then((s) => port.postMessage(s));
    else void timedRun(session, m.input).then((s) => port.postMessage(s));
  });
  port.postMessage('ready');
} else {
  const cfg = JSON.parse(process.argv[2] ?? '{}') as ProbeConfig;
  const self = new URL(import.meta.url);
  const open = async (file: string): Promise<Worker> => {
    const w = new Worker(self, { workerData: { file } });
    await new Promise<void>((resolve, reject) => {
      w.once('message', () => resolve());
      w.once('error', reject);
    });
    return w;
  };
  const others: Worker[] = [];
  for (const m of cfg.otherSessions) others.push(await open(join(SHIPPED_MODELS, m, '1', 'model.onnx')));
  const mainSession = cfg.thread === 'main' ? await openRaw(MODEL_FILE) : null;
  const worker = cfg.thread === 'worker' ? await open(MODEL_FILE) : null;
  const ask = <T>(msg: ToWorker): Promise<T> => new Promise((resolve) => {
    worker!.once('message', resolve);
    worker!.postMessage(msg);
  });

  const round = async (runs: number): Promise<RunSample[]> => {
    if (mainSession) return loop(mainSession, inputs, runs, cfg.pause, cfg.pauseMs);
    if (cfg.drive === 'loop') return ask<RunSample[]>({ type: 'loop', runs, pause: cfg.pause, pauseMs: cfg.pauseMs });
    const out: RunSample[] = [];
    for (let i = 0; i < runs; i++) {
      // The main thread pauses (asleep in its event loop, as between one client's requests),
      // then posts a copy of the input, as Perch's dispatch does.
      if (cfg.pause === 'sleep') await new Promise((r) => setTimeout(r, cfg.pauseMs));
      else pause(cfg.pause, cfg.pauseMs);
      out.push(await ask<RunSample>({ type: 'run', input: inputs[i % inputs.length]! }));
    }
    return out;
  };

  // The parent gone (asked to, or it failed): nothing of this probe stays on the machine.
  process.once('disconnect', () => process.exit(0));
  process.on('message', (m: { runs: number } | 'exit') => {
    if (m === 'exit') {
      process.exit(0);
    }
    void round(m.runs).then((samples) => process.send!(samples));
  });
  process.send!('ready');
}
