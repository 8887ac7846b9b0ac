// Model updates, one at a time per model: decides whether a desired ModelSpec needs one, runs
// the steps (steps.ts), routes incoming chunks to the download in progress, and records the
// outcome (status book -> state/reported, an event, the circuit breaker's watch).
import { readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { PerchError, toPerchError } from '../../../runtime/base/errors.js';
import type { ModelSpec } from '../../protocol/index.js';
import type { Connection } from '../connection.js';
import type { RuntimePort, ServedModel } from '../../../runtime/port/runtime-port.js';
import { servedByName } from '../served.js';
import { AGENT_KEYS } from '../state-keys.js';
import type { AgentStats } from '../stats.js';
import { ChunkStore } from './chunk-store.js';
import { ChunkDownload } from './download.js';
import type { DownloadOptions, ModelDownload } from './staged-download.js';
import { HttpDownload } from './http-download.js';
import { checkSpace } from './space.js';
import { SPACE_WAIT_DEFAULTS, SpaceWaiter, type SpaceWaitOptions } from './space-wait.js';
import type { StatusBook } from './status-book.js';
import { runSteps, StepFailure, UPDATE_STEPS, type UpdateContext, type UpdateStep } from './steps.js';

interface ActiveUpdate {
  spec: ModelSpec;
  abort: AbortController;
  download: ModelDownload | null;
  done: Promise<void>;
  /** Past check-space: its bytes are promised (ModelUpdater.reservedBy). */
  store: ChunkStore;
  reserved: boolean;
}

/** What of the runtime model updates use: the models, the agent's state, events, cloud config. */
export type UpdaterRuntime = Pick<RuntimePort, 'models' | 'state' | 'events' | 'log' | 'clock' | 'cloud' | 'tracing'>;

export interface UpdaterHooks {
  /** A version was swapped in: the circuit breaker watches it. */
  installed(name: string, version: number): void;
  /** Something reported changed. */
  changed(): void;
}

export class ModelUpdater {
  private readonly active = new Map<string, ActiveUpdate>();
  /** Updates refused NO_SPACE, tried again once the disk would hold them (space-wait.ts). */
  private readonly spaceWait: SpaceWaiter;

  constructor(
    private readonly runtime: UpdaterRuntime,
    private readonly conn: Connection,
    private readonly stats: AgentStats,
    private readonly book: StatusBook,
    private readonly hooks: UpdaterHooks,
    private readonly downloadOpts: DownloadOptions,
    private readonly steps: readonly UpdateStep[] = UPDATE_STEPS,
    spaceWait: SpaceWaitOptions = SPACE_WAIT_DEFAULTS,
  ) {
    this.spaceWait = new SpaceWaiter(runtime.clock, runtime.log, { check: (name, spec) => this.spaceProblem(name, spec), retry: (name, spec, attempt) => this.retryForSpace(name, spec, attempt) }, spaceWait);
  }

  /** Brings `name` to `spec` unless it already serves it, is on its way, or refused this very file. */
  ensure(name: string, spec: ModelSpec): void {
    this.spaceWait.clear(name); // this spec is looked at now
    const served = servedByName(this.runtime.models).get(name);
    const running = this.active.get(name);
    if (served && served.version === spec.version && served.sha256 === spec.sha256) {
      if (running) void this.cancel(name);
      this.book.clear(name);
      return;
    }
    if (running && running.spec.version === spec.version && running.spec.sha256 === spec.sha256) return;
    if (this.book.refused(name, spec.version, spec.sha256)) {
      this.runtime.log.info({ model: name, version: spec.version }, 'desired model version was refused before; not fetched again');
      return;
    }
    // The superseded update finishes cancelling (and releases its subscription) first.
    this.begin(name, spec, running ? this.cancel(name) : Promise.resolve());
  }

  /** Desired `null` (docs/protocol.md section 5): stop any update of it, unload it, delete it, report it. */
  async remove(name: string): Promise<void> {
    const served = servedByName(this.runtime.models).get(name);
    this.spaceWait.reset(name);
    await this.cancel(name);
    this.book.clear(name);
    try {
      this.runtime.state.delete(AGENT_KEYS.download(name));
    } catch {
      // Reporting only.
    }
    rmSync(join(this.runtime.models.stagingDir, name), { recursive: true, force: true });
    try {
      await this.runtime.models.remove(name);
    } catch (err) {
      const e = toPerchError(err);
      this.runtime.events.record('model.remove.failed', { model: name, version: served?.version ?? null, code: e.code, message: e.message });
      this.hooks.changed();
      throw e;
    }
    this.runtime.log.info({ model: name, version: served?.version ?? null }, 'model removed (desired state null)');
    this.runtime.events.record('model.removed', { model: name, version: served?.version ?? null });
    // state/reported no longer lists it.
    this.hooks.changed();
  }

  /** Drops what the status book says about a model that is neither served nor wanted. */
  forget(name: string): void {
    this.spaceWait.reset(name);
    this.book.clear(name);
  }

  /** Routes a chunk to the download of that model version; false when there is none. */
  receiveChunk(name: string, version: number, index: number, payload: Buffer): boolean {
    const a = this.active.get(name);
    if (!a?.download || a.spec.version !== version) return false;
    return a.download.receive(index, payload);
  }

  /**
   * Serves the previous version again; the current one is marked failed so it is not fetched again.
   * `from`: the version the rollback is meant for; refused PERCH_ERR_ROLLBACK_STALE when another
   * one serves (checked in the same turn as the runtime reads what serves, so no install slips in
   * between).
   */
  async rollback(name: string, reason: string, trigger: 'circuit-breaker' | 'command', details: Record<string, unknown> = {}, from?: number): Promise<ServedModel> {
    const before = servedByName(this.runtime.models).get(name);
    if (from !== undefined && before?.version !== from) {
      throw new PerchError('PERCH_ERR_ROLLBACK_STALE', `rollback of '${name}' from version ${from} refused: ${before ? `version ${before.version} serves` : 'no version serves'} (a replayed or delayed command)`);
    }
    const tracing = this.runtime.tracing;
    const span = tracing?.enabled ? tracing.startSpan('perch.model.rollback', { attributes: { 'perch.model': name, 'perch.model.version': before?.version ?? 0, 'perch.rollback.trigger': trigger } }) : null;
    let after: ServedModel;
    try {
      after = await this.runtime.models.rollback(name);
    } catch (err) {
      if (span) tracing?.end(span, toPerchError(err).code, (err as Error).message);
      throw err;
    }
    if (span) {
      span.setAttribute('perch.model.rolled_back_to', after.version);
      tracing?.end(span);
    }
    this.stats.rollbacks++;
    if (before) {
      const error = new PerchError('PERCH_ERR_MODEL_ROLLED_BACK', reason);
      this.book.set(name, { version: before.version, sha256: before.sha256, status: 'failed', error: error.toJSON() });
    }
    this.runtime.events.record('model.rolled_back', { model: name, from: before?.version ?? null, to: after.version, trigger, code: 'PERCH_ERR_MODEL_ROLLED_BACK', reason, ...details });
    this.hooks.changed();
    return after;
  }

  /** Downloads stop; staged chunks stay for the next start. */
  async stop(): Promise<void> {
    this.spaceWait.stop();
    await Promise.all([...this.active.keys()].map((n) => this.cancel(n)));
  }

  /** Chunks staged of the download in progress of `name`, for state/reported; null when none. */
  progress(name: string): { staged: number; total: number } | null {
    const d = this.active.get(name)?.download;
    return d ? { staged: d.stagedChunks, total: d.total } : null;
  }

  isUpdating(name: string): boolean {
    return this.active.has(name);
  }

  /**
   * What the updates other than `self` that passed check-space will still write: the download
   * less what they staged, and the install copy. Each update checked alone against the same free
   * space would let a document naming many models (each fitting alone) fill the disk together.
   */
  private reservedBy(self: ActiveUpdate | null): number {
    let bytes = 0;
    for (const a of this.active.values()) {
      if (a === self || !a.reserved) continue;
      bytes += Math.max(0, a.spec.size - a.store.allocatedBytes()) + a.spec.size;
    }
    return bytes;
  }

  private async cancel(name: string): Promise<void> {
    const a = this.active.get(name);
    if (!a) return;
    a.abort.abort(new Error('model update cancelled'));
    await a.done;
  }

  private begin(name: string, spec: ModelSpec, after: Promise<void>): void {
    const store = new ChunkStore(this.runtime.models.stagingDir, name, spec.version, spec.sha256, spec.chunkSize);
    const abort = new AbortController();
    const log = this.runtime.log.child({ model: name, version: spec.version });
    const entry: ActiveUpdate = { spec, abort, download: null, done: Promise.resolve(), store, reserved: false };
    const ctx: UpdateContext = {
      runtime: this.runtime,
      name,
      spec,
      store,
      signal: abort.signal,
      log,
      // A spec with a url is fetched over HTTP(S) (docs/cloud-sync.md "Model bytes over HTTP"), else as MQTT chunks.
      startDownload: () =>
        (entry.download = spec.url
          ? new HttpDownload(this.runtime, this.stats, name, spec, store, this.downloadOpts, () => this.hooks.changed())
          : new ChunkDownload(this.runtime, this.conn, this.stats, name, spec, store, this.downloadOpts, () => this.hooks.changed())),
      setStatus: (status) => this.book.set(name, { version: spec.version, sha256: spec.sha256, status }),
      reservedByOthers: () => this.reservedBy(entry),
      reserve: () => {
        entry.reserved = true;
      },
    };
    // docs/observability.md: one `perch.model.update` span, each step a child.
    const tracing = this.runtime.tracing;
    if (tracing?.enabled) {
      ctx.trace = { tracing, span: tracing.startSpan('perch.model.update', { attributes: { 'perch.model': name, 'perch.model.version': spec.version, 'perch.model.sha256': spec.sha256 } }) };
    }
    this.active.set(name, entry);
    entry.done = after
      .then(() => {
        // Once the superseded update has stopped writing: its chunks can never be used now.
        this.removeOtherStaging(name, store.dir);
        return runSteps(this.steps, ctx);
      })
      .then(
      () => this.succeeded(ctx),
      (err: unknown) => this.failed(ctx, err),
    ).catch((err: unknown) => {
      // Recording the outcome failed (a store that cannot write, say): the update's fate is
      // logged and the process goes on serving.
      log.error({ err }, 'model update outcome not recorded');
    }).finally(() => {
      entry.reserved = false;
      if (this.active.get(name) === entry) this.active.delete(name);
    });
  }

  private succeeded(ctx: UpdateContext): void {
    const { name, spec } = ctx;
    if (ctx.trace) {
      ctx.trace.span.setAttribute('perch.model.previous_version', ctx.installed?.previousVersion ?? 0);
      ctx.trace.tracing.end(ctx.trace.span);
    }
    this.stats.modelUpdatesApplied++;
    this.spaceWait.reset(name);
    this.book.clear(name);
    this.cleanup(ctx);
    this.runtime.events.record('model.update.applied', {
      model: name, version: spec.version, sha256: spec.sha256, previousVersion: ctx.installed?.previousVersion ?? null,
    });
    this.hooks.installed(name, spec.version);
    this.hooks.changed();
  }

  private failed(ctx: UpdateContext, err: unknown): void {
    const { name, spec } = ctx;
    if (ctx.trace) {
      const f = err instanceof StepFailure ? err.error : toPerchError(err);
      if (ctx.signal.aborted) ctx.trace.span.setAttribute('perch.model.cancelled', true);
      ctx.trace.tracing.end(ctx.trace.span, ctx.signal.aborted ? undefined : f.code, f.message);
    }
    if (ctx.signal.aborted) {
      ctx.log.info('model update cancelled (superseded or stopping); staged chunks kept');
      return;
    }
    const step = err instanceof StepFailure ? err.step : 'unknown';
    const e = err instanceof StepFailure ? err.error : toPerchError(err);
    this.stats.modelUpdatesFailed++;
    this.book.set(name, { version: spec.version, sha256: spec.sha256, status: 'failed', error: e.toJSON() });
    // A download that could not finish may finish later from what is staged (chunks that came
    // wrong were never staged); anything else is final.
    if (e.code !== 'PERCH_ERR_MODEL_DOWNLOAD_FAILED' && e.code !== 'PERCH_ERR_MODEL_CHUNK_MISMATCH') this.cleanup(ctx);
    this.runtime.events.record('model.update.failed', { model: name, version: spec.version, sha256: spec.sha256, step, code: e.code, message: e.message });
    // Not final: tried again once the disk would hold it (docs/cloud-sync.md).
    if (e.code === 'PERCH_ERR_MODEL_NO_SPACE') this.spaceWait.wait(name, spec);
    this.hooks.changed();
  }

  /** Why `spec` would not fit the disk now (check-space's own check; nothing was staged), or null. */
  private spaceProblem(name: string, spec: ModelSpec): PerchError | null {
    const { download } = this.runtime.cloud;
    try {
      checkSpace({
        name, version: spec.version, size: spec.size, staged: 0,
        stagingDir: this.runtime.models.stagingDir, repositoryDir: this.runtime.models.repositoryDir,
        maxModelBytes: download.maxModelBytes, headroomBytes: download.diskHeadroomBytes, reserved: this.reservedBy(null),
      });
      return null;
    } catch (err) {
      return toPerchError(err);
    }
  }

  /** The disk would hold a NO_SPACE update now: reported as downloading again, and run (checks first). */
  private retryForSpace(name: string, spec: ModelSpec, attempt: number): void {
    if (this.active.has(name)) return; // something else of it runs; it reports for itself
    this.runtime.events.record('model.update.retried', { model: name, version: spec.version, sha256: spec.sha256, code: 'PERCH_ERR_MODEL_NO_SPACE', attempt });
    this.book.set(name, { version: spec.version, sha256: spec.sha256, status: 'downloading' });
    this.ensure(name, spec);
  }

  private cleanup(ctx: UpdateContext): void {
    ctx.store.remove();
    try {
      this.runtime.state.delete(AGENT_KEYS.download(ctx.name));
    } catch (err) {
      ctx.log.warn({ err }, 'download progress not deleted');
    }
  }

  /** Chunks of another version (or another file) of this model can never be used now. */
  private removeOtherStaging(name: string, keep: string): void {
    const dir = join(this.runtime.models.stagingDir, name);
    let entries: string[];
    try {
      entries = readdirSync(dir);
    } catch {
      return;
    }
    for (const e of entries) if (join(dir, e) !== keep) rmSync(join(dir, e), { recursive: true, force: true });
  }
}
