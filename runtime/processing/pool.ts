// A pool of processing threads (docs/models.md, "Pipelines"): image decoding, resizing and
// post-processing run here, off the main thread. Threads start on first use (a runtime that
// serves no pipeline pays nothing) up to `size`, by default one per core, at most 4.
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { PerchError, type ErrorCode } from '../base/errors.js';
import { trackThread, type CollectMessage } from '../base/full-collection.js';
import type { Tensor } from '../tensor/tensor.js';
import type { ProcessingStep } from './step-io.js';

const WORKER_URL = new URL('./worker.js', import.meta.url);

/** `probe`: only read an image.decode step's header (its size), decode nothing (run-step.ts). */
export interface ProcessingTask { id: number; step: ProcessingStep; inputs: Tensor[]; dir: string; probe?: true }
export type ProcessingReply =
  | { id: number; ok: true; outputs: Tensor[] }
  | { id: number; ok: false; code: ErrorCode; message: string };

interface Pending { task: ProcessingTask; resolve: (t: Tensor[]) => void; reject: (e: Error) => void }

interface Slot { worker: Worker; busy: Pending | null }

export function defaultPoolSize(): number {
  return Math.max(1, Math.min(4, availableParallelism()));
}

export class ProcessingPool {
  private readonly slots: Slot[] = [];
  private readonly queue: Pending[] = [];
  private nextId = 1;
  private closed = false;

  constructor(readonly size = defaultPoolSize()) {}

  /** Runs one step on a processing thread. */
  run(step: ProcessingStep, inputs: Tensor[], dir: string): Promise<Tensor[]> {
    return this.submit({ id: this.nextId++, step, inputs, dir });
  }

  /**
   * The pixels an image.decode step's input would decode to, from its header (refused there if
   * it is not an image or over the step's maxPixels): what the pipeline takes from the pixel
   * budget before decoding (runtime/pipelines/pixel-budget.ts).
   */
  async probe(step: Extract<ProcessingStep, { op: 'image.decode' }>, input: Tensor): Promise<number> {
    const [size] = await this.submit({ id: this.nextId++, step, inputs: [input], dir: '', probe: true });
    const d = size?.data as Float64Array;
    return (d[0] as number) * (d[1] as number);
  }

  /**
   * A full collection on each processing thread (run after its current task). A thread's heap is
   * small and seldom collected, so the decoded pictures it received (views of a SharedArrayBuffer,
   * image.ts) and sharp's own output buffer stayed alive after their answer: eight 39.7 Mpx images
   * to `ocr` one after the other peaked at 1.7 GB with one in flight. Collecting a thread's few MB
   * of heap takes a few ms.
   */
  collect(): void {
    for (const s of this.slots) s.worker.postMessage({ type: 'collect' } satisfies CollectMessage);
  }

  /** Threads started so far. */
  get threads(): number {
    return this.slots.length;
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const p of this.queue.splice(0)) p.reject(new PerchError('PERCH_ERR_SHUTTING_DOWN', 'the processing threads are stopping'));
    await Promise.all(this.slots.splice(0).map((s) => s.worker.terminate()));
  }

  /** Queues a task for the next free thread (run, probe). */
  private submit(task: ProcessingTask): Promise<Tensor[]> {
    if (this.closed) return Promise.reject(new PerchError('PERCH_ERR_SHUTTING_DOWN', 'the processing threads are stopped'));
    return new Promise((resolve, reject) => {
      this.queue.push({ task, resolve, reject });
      this.pump();
    });
  }

  private pump(): void {
    while (this.queue.length > 0) {
      let slot = this.slots.find((s) => s.busy === null);
      if (!slot && this.slots.length < this.size) slot = this.start();
      if (!slot) return;
      const p = this.queue.shift() as Pending;
      slot.busy = p;
      slot.worker.postMessage(p.task);
    }
  }

  private start(): Slot {
    const worker = new Worker(WORKER_URL);
    worker.unref(); // never what keeps the process alive
    trackThread(worker);
    const slot: Slot = { worker, busy: null };
    worker.on('message', (r: ProcessingReply) => {
      const p = slot.busy;
      slot.busy = null;
      if (p && p.task.id === r.id) {
        if (r.ok) p.resolve(r.outputs);
        else p.reject(new PerchError(r.code, r.message));
      }
      this.pump();
    });
    // A thread that dies (out of memory in a decoder) fails its task only; the next task starts a new one.
    const lost = (why: string): void => {
      const i = this.slots.indexOf(slot);
      if (i < 0) return;
      this.slots.splice(i, 1);
      slot.busy?.reject(new PerchError('PERCH_ERR_PIPELINE_STEP_FAILED', `the processing thread died: ${why}`));
      slot.busy = null;
      if (!this.closed) this.pump();
    };
    worker.on('error', (err) => lost(err.message));
    worker.on('exit', (code) => lost(`exit code ${code}`));
    this.slots.push(slot);
    return slot;
  }
}
