// Modules with a lifecycle (docs/design.md house style 2): started in order, stopped in reverse.
import type { Logger } from './log.js';

export interface Module {
  readonly name: string;
  start(signal: AbortSignal): Promise<void>;
  stop(): Promise<void>;
}

export class ModuleSet {
  private readonly started: Module[] = [];
  private readonly abort = new AbortController();

  constructor(private readonly log: Logger) {}

  async start(modules: readonly Module[]): Promise<void> {
    for (const m of modules) {
      const t0 = performance.now();
      await m.start(this.abort.signal);
      this.started.push(m);
      this.log.debug({ module: m.name, ms: Math.round(performance.now() - t0) }, 'module started');
    }
  }

  /** Stops every started module in reverse order; a failing stop is logged and the rest go on. */
  async stop(): Promise<void> {
    this.abort.abort();
    for (const m of this.started.splice(0).reverse()) {
      try {
        await m.stop();
      } catch (err) {
        this.log.error({ module: m.name, err }, 'module failed to stop cleanly');
      }
    }
  }
}
