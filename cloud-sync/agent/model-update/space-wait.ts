// A model update refused PERCH_ERR_MODEL_NO_SPACE waits for the disk (docs/cloud-sync.md,
// "Checked before the download"): it was final until the next desired document or a restart,
// so a device whose disk was full for an hour never took the update once the space came back.
// The free space is looked at again (a statfs, nothing downloaded) on the injected clock, the
// wait doubling from `firstMs` to `maxMs` per look that finds too little; once the update
// would fit, it is tried again. The looks of one file keep counting across retries that meet a
// full disk again (another writer filling it each time), so no loop runs faster than `maxMs` for
// long, and a look that finds too little logs nothing (debug only).
import type { Clock, TimerHandle } from '../../../runtime/base/clock.js';
import type { PerchError } from '../../../runtime/base/errors.js';
import type { Logger } from '../../../runtime/base/log.js';
import type { ModelSpec } from '../../protocol/index.js';

export interface SpaceWaitOptions {
  /** First look at the free space after a NO_SPACE failure. */
  firstMs: number;
  /** The wait between looks doubles up to this. */
  maxMs: number;
}

export const SPACE_WAIT_DEFAULTS: SpaceWaitOptions = { firstMs: 10_000, maxMs: 300_000 };

export interface SpaceWaitHooks {
  /** null when the update would fit the disk now, else why not (PERCH_ERR_MODEL_NO_SPACE: keep waiting). */
  check(name: string, spec: ModelSpec): PerchError | null;
  /** The update fits: try it again (`attempt` counts the retries of this file, from 1). */
  retry(name: string, spec: ModelSpec, attempt: number): void;
}

interface Waiting {
  spec: ModelSpec;
  timer: TimerHandle | null;
}

interface Tries {
  file: string;
  /** Looks at the free space so far: the next wait is firstMs * 2^looks (at most maxMs). */
  looks: number;
  retries: number;
}

export class SpaceWaiter {
  private readonly waiting = new Map<string, Waiting>();
  private readonly tries = new Map<string, Tries>();

  constructor(
    private readonly clock: Clock,
    private readonly log: Logger,
    private readonly hooks: SpaceWaitHooks,
    private readonly opts: SpaceWaitOptions = SPACE_WAIT_DEFAULTS,
  ) {}

  /** `name` failed NO_SPACE with `spec`: look at the disk again later. Returns the wait in ms. */
  wait(name: string, spec: ModelSpec): number {
    this.clear(name);
    const tries = this.triesOf(name, spec);
    const entry: Waiting = { spec, timer: null };
    this.waiting.set(name, entry);
    const ms = this.schedule(name, entry, tries);
    this.log.info({ model: name, version: spec.version, retryCheckMs: ms, retries: tries.retries }, 'model update waits for disk space; tried again once it fits');
    return ms;
  }

  isWaiting(name: string): boolean {
    return this.waiting.has(name);
  }

  /** Stops waiting for `name` (a new desired spec, a removal, stop); its backoff is kept for the same file. */
  clear(name: string): void {
    const w = this.waiting.get(name);
    if (!w) return;
    if (w.timer) this.clock.clearTimeout(w.timer);
    this.waiting.delete(name);
  }

  /** Forgets `name` entirely (installed, removed, no longer wanted). */
  reset(name: string): void {
    this.clear(name);
    this.tries.delete(name);
  }

  stop(): void {
    for (const name of [...this.waiting.keys()]) this.clear(name);
  }

  private triesOf(name: string, spec: ModelSpec): Tries {
    const file = `${spec.version}:${spec.sha256}`;
    let t = this.tries.get(name);
    if (!t || t.file !== file) {
      t = { file, looks: 0, retries: 0 };
      this.tries.set(name, t);
    }
    return t;
  }

  private schedule(name: string, entry: Waiting, tries: Tries): number {
    const ms = Math.min(this.opts.maxMs, this.opts.firstMs * 2 ** Math.min(tries.looks, 30));
    entry.timer = this.clock.setTimeout(() => this.look(name, entry, tries), ms);
    return ms;
  }

  private look(name: string, entry: Waiting, tries: Tries): void {
    if (this.waiting.get(name) !== entry) return;
    tries.looks++;
    const why = this.hooks.check(name, entry.spec);
    if (why?.code === 'PERCH_ERR_MODEL_NO_SPACE') {
      this.log.debug({ model: name, version: entry.spec.version, err: why.message }, 'still not enough disk space for the model update');
      this.schedule(name, entry, tries);
      return;
    }
    this.waiting.delete(name);
    if (why) {
      // Not a matter of space any more (the config changed): the update stays failed as reported.
      this.log.info({ model: name, version: entry.spec.version, code: why.code, err: why.message }, 'model update no longer waits for disk space');
      return;
    }
    tries.retries++;
    this.log.info({ model: name, version: entry.spec.version, attempt: tries.retries }, 'disk space for the model update again: trying it again');
    this.hooks.retry(name, entry.spec, tries.retries);
  }
}
