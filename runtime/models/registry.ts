// The served models. A (re)load reads the model's folder again, opens every version its policy
// selects in new instances, then swaps them in at once: new requests go to the new sessions,
// requests already queued finish on the old ones, which are released when drained. A version
// that fails to load leaves the instance it would have replaced serving (and is reported).
import type { Bus } from '../base/bus.js';
import { PerchError, toPerchError } from '../base/errors.js';
import type { Logger } from '../base/log.js';
import type { ModelConfigFile, ModelOverrides } from './model-config.js';
import { listModelNames, listVersions, modelPath, readModelConfig, selectVersions } from './repository.js';
import type { ResolvedModelConfig } from './resolve-config.js';

/**
 * What the registry needs of a served version. The one served is batching/model-instance.ts,
 * which the runtime hands in as `load`: the registry stays below the batcher that uses it.
 */
export interface ServedVersion {
  readonly name: string;
  readonly version: number;
  readonly config: ResolvedModelConfig;
  /** SHA-256 (hex) of the model file. */
  readonly sha256: string;
  readonly warmedUp: boolean;
  readonly providers: string[];
  readonly warnings: string[];
  /** New batching/cache settings for the running version (live config). */
  applyOverrides(o: ModelOverrides | undefined): void;
  /** Why `o` cannot go over this version's model.json (overrides.ts), or null. */
  overridesIssue?(o: ModelOverrides | undefined): string | null;
  /** Lets queued work finish, then releases the sessions. Idempotent. */
  retire(): Promise<void>;
}

export interface VersionStatus {
  version: number;
  state: 'ready' | 'failed';
  error?: { code: string; message: string };
}

export interface ModelStatus {
  name: string;
  /** Versions served now, ascending. */
  served: number[];
  versions: VersionStatus[];
  /** A failure that concerns the whole model (bad model.json, no version folder). */
  error?: { code: string; message: string };
  /** model.json `loading: "firstUse"` and no request yet: not loaded, loads on first use. */
  loadsOnFirstUse?: true;
}

interface Entry<I> {
  instances: Map<number, I>;
  failures: Map<number, PerchError>;
  error: PerchError | null;
  /** Serialises loads of the same model. */
  loading: Promise<unknown>;
  /** model.json `loading: "firstUse"` and not loaded yet. */
  lazy: boolean;
  /** The load its first use started. */
  firstUse: Promise<void> | null;
}

export interface RegistryDeps<I extends ServedVersion> {
  /** Opens one version of a model to serve (the runtime gives batching/model-instance.ts). */
  load: (name: string, version: number, path: string, file: ModelConfigFile, overrides: ModelOverrides | undefined) => Promise<I>;
  repository: string;
  /** Per-model settings over model.json (config `models.overrides`, changed live). */
  overrides: () => Readonly<Record<string, ModelOverrides>>;
  log: Logger;
  bus: Bus;
}

export class ModelRegistry<I extends ServedVersion = ServedVersion> {
  private readonly models = new Map<string, Entry<I>>();
  private closed = false;
  /** Old instances still draining after a swap. */
  private readonly draining = new Set<Promise<void>>();

  constructor(private readonly deps: RegistryDeps<I>) {}

  /**
   * Loads every model in the repository; failures are recorded, never thrown. A model whose
   * model.json says `loading: "firstUse"` is only noted: resolveLoaded() loads it.
   */
  async loadAll(): Promise<void> {
    for (const name of listModelNames(this.deps.repository)) {
      if (this.loadsOnFirstUse(name)) {
        this.entry(name).lazy = true;
        this.deps.log.info({ model: name }, 'model loads on first use');
        continue;
      }
      await this.load(name);
    }
  }

  private loadsOnFirstUse(name: string): boolean {
    try {
      return readModelConfig(this.deps.repository, name).loading === 'firstUse';
    } catch {
      return false; // a broken model.json is reported by loading it now
    }
  }

  /**
   * Whether the model loads on first use and has not been loaded yet: resolveLoaded() must
   * wait for it. The request path asks this first so that a loaded model is resolved without
   * an await (a promise and a microtask turn fewer per request; docs/benchmarks.md, issue 20).
   */
  loadsFirst(name: string): boolean {
    return this.models.get(name)?.lazy === true;
  }

  /**
   * resolve(), after loading a model that loads on first use (concurrent first requests wait
   * for the same load). Every request path goes through here, or through resolve() once
   * loadsFirst() says there is nothing to wait for (the infer service).
   */
  async resolveLoaded(name: string, version?: number): Promise<I> {
    const entry = this.models.get(name);
    if (entry?.lazy) {
      entry.firstUse ??= this.load(name).then(() => {
        entry.lazy = false;
      });
      await entry.firstUse;
    }
    return this.resolve(name, version);
  }

  /** Names found in the repository folder now (for the repository index). */
  repositoryNames(): string[] {
    return listModelNames(this.deps.repository);
  }

  /** (Re)loads one model from its folder and swaps the new versions in. */
  load(name: string): Promise<ModelStatus> {
    const entry = this.entry(name);
    const run = entry.loading.then(() => this.doLoad(name, entry));
    entry.loading = run.catch(() => undefined);
    return run;
  }

  /** Stops serving a model; its queued and running requests finish first. */
  async unload(name: string): Promise<void> {
    const entry = this.models.get(name);
    if (!entry) throw new PerchError('PERCH_ERR_MODEL_NOT_FOUND', `no model '${name}'`);
    await entry.loading;
    this.models.delete(name);
    const old = [...entry.instances.values()];
    for (const i of old) this.deps.bus.emit('model', { name, version: i.version, state: 'unloaded' });
    await Promise.all(old.map((i) => i.retire()));
    this.deps.log.info({ model: name }, 'model unloaded');
  }

  /** The instance that serves (name, version); the highest served version when none is given. */
  resolve(name: string, version?: number): I {
    const entry = this.models.get(name);
    if (!entry) throw new PerchError('PERCH_ERR_MODEL_NOT_FOUND', `no model '${name}'`);
    if (version === undefined) {
      let best: I | undefined;
      for (const i of entry.instances.values()) if (!best || i.version > best.version) best = i;
      if (best) return best;
      const why = entry.error ?? [...entry.failures.values()][0];
      throw new PerchError('PERCH_ERR_MODEL_NOT_READY', `model '${name}' is not ready${why ? `: ${why.message}` : ''}`);
    }
    const inst = entry.instances.get(version);
    if (inst) return inst;
    const failure = entry.failures.get(version);
    if (failure) throw new PerchError('PERCH_ERR_MODEL_NOT_READY', `model '${name}' version ${version} is not ready: ${failure.message}`);
    throw new PerchError('PERCH_ERR_VERSION_NOT_FOUND', `model '${name}' has no version ${version} (served: ${[...entry.instances.keys()].join(', ') || 'none'})`);
  }

  has(name: string): boolean {
    return this.models.has(name);
  }

  status(): ModelStatus[] {
    return [...this.models.keys()].sort().map((n) => this.statusOf(n));
  }

  statusOf(name: string): ModelStatus {
    const entry = this.models.get(name);
    if (!entry) throw new PerchError('PERCH_ERR_MODEL_NOT_FOUND', `no model '${name}'`);
    const versions = new Map<number, VersionStatus>();
    for (const v of entry.instances.keys()) versions.set(v, { version: v, state: 'ready' });
    for (const [v, e] of entry.failures) if (!versions.has(v)) versions.set(v, { version: v, state: 'failed', error: e.toJSON() });
    return {
      name,
      served: [...entry.instances.keys()].sort((a, b) => a - b),
      versions: [...versions.values()].sort((a, b) => a.version - b.version),
      ...(entry.error ? { error: entry.error.toJSON() } : {}),
      ...(entry.lazy ? { loadsOnFirstUse: true as const } : {}),
    };
  }

  /**
   * Why the last load of (name, version) failed, or undefined. statusOf() reports a version that
   * failed to reload while its old instance serves on as ready; an install of the same version
   * number again must still see that its file did not come up.
   */
  failureOf(name: string, version: number): { code: string; message: string } | undefined {
    return this.models.get(name)?.failures.get(version)?.toJSON();
  }

  /** docs/protocol.md section 3: ready when every model of the repository serves and none failed. */
  isReady(): boolean {
    if (this.models.size === 0) return true;
    for (const e of this.models.values()) {
      if (e.lazy) continue; // it loads when asked for
      if (e.error || e.failures.size > 0 || e.instances.size === 0) return false;
    }
    return true;
  }

  /** Old versions swapped out but not yet released (draining queues, or pinned by sequences). */
  get drainingCount(): number {
    return this.draining.size;
  }

  /** Applies new `models.overrides` to the instances serving now (live config). */
  /** What would refuse these `models.overrides` on the versions serving now: one line per version. */
  overridesIssues(all: Readonly<Record<string, ModelOverrides>>): string[] {
    const out: string[] = [];
    for (const inst of this.instances()) {
      const issue = inst.overridesIssue?.(all[inst.name]);
      if (issue) out.push(`  - models.overrides.${inst.name} (version ${inst.version}): ${issue}`);
    }
    return out;
  }

  applyOverrides(all: Readonly<Record<string, ModelOverrides>>): void {
    for (const inst of this.instances()) inst.applyOverrides(all[inst.name]);
  }

  instances(): I[] {
    return [...this.models.values()].flatMap((e) => [...e.instances.values()]);
  }

  /** Waits for running loads, then drains and releases every session. */
  async close(): Promise<void> {
    this.closed = true;
    await Promise.all([...this.models.values()].map((e) => e.loading));
    await Promise.all(this.instances().map((i) => i.retire()));
    await Promise.all(this.draining);
    this.models.clear();
  }

  private entry(name: string): Entry<I> {
    let e = this.models.get(name);
    if (!e) {
      e = { instances: new Map(), failures: new Map(), error: null, loading: Promise.resolve(), lazy: false, firstUse: null };
      this.models.set(name, e);
    }
    return e;
  }

  private async doLoad(name: string, entry: Entry<I>): Promise<ModelStatus> {
    if (this.closed) throw new PerchError('PERCH_ERR_SHUTTING_DOWN', 'the runtime is stopping');
    const { log, bus, repository } = this.deps;
    let selected: number[];
    let file;
    try {
      file = readModelConfig(repository, name);
      const available = listVersions(repository, name, file.pipeline !== undefined);
      selected = selectVersions(available, file.versionPolicy);
      if (selected.length === 0) {
        throw new PerchError('PERCH_ERR_NO_VERSIONS', `model '${name}': no version folder with a model.onnx is selected (found: ${available.join(', ') || 'none'})`);
      }
    } catch (err) {
      entry.error = toPerchError(err);
      log.error({ model: name, code: entry.error.code, err: entry.error.message }, 'model not loaded');
      bus.emit('model', { name, version: null, state: 'failed', error: entry.error.toJSON() });
      return this.statusOf(name);
    }
    entry.error = null;

    const fresh = new Map<number, I>();
    for (const version of selected) {
      try {
        const inst = await this.deps.load(name, version, modelPath(repository, name, version), file, this.deps.overrides()[name]);
        fresh.set(version, inst);
        entry.failures.delete(version);
        for (const w of inst.warnings) log.warn({ model: name, version }, w);
        log.info({ model: name, version, providers: inst.providers, maxBatchSize: inst.config.maxBatchSize, warmedUp: inst.warmedUp }, 'model version loaded');
      } catch (err) {
        const e = toPerchError(err);
        entry.failures.set(version, e);
        log.error({ model: name, version, code: e.code, err: e.message }, 'model version failed to load');
        bus.emit('model', { name, version, state: 'failed', error: e.toJSON() });
      }
    }

    // The swap: one synchronous step, so no request sees a half-updated map.
    const previous = entry.instances;
    const next = new Map<number, I>();
    for (const v of selected) {
      const inst = fresh.get(v) ?? previous.get(v); // a failed reload keeps the old one serving
      if (inst) next.set(v, inst);
    }
    // A selected version that failed leaves what it would have replaced serving: with
    // {latest: 1}, a broken new version 2 must not take version 1 down with it.
    if (selected.some((v) => !next.has(v))) {
      for (const [v, inst] of previous) if (!next.has(v)) next.set(v, inst);
    }
    entry.instances = next;
    entry.lazy = false;
    for (const v of entry.failures.keys()) if (!selected.includes(v)) entry.failures.delete(v);
    for (const inst of fresh.values()) bus.emit('model', { name, version: inst.version, state: 'ready' });

    const retired = [...previous.values()].filter((i) => next.get(i.version) !== i);
    for (const i of retired) {
      if (!next.has(i.version)) bus.emit('model', { name, version: i.version, state: 'unloaded' });
      const done = i.retire().then(() => {
        this.draining.delete(done);
        log.info({ model: name, version: i.version }, 'old session released after draining');
      });
      this.draining.add(done);
    }
    return this.statusOf(name);
  }
}
