// state/reported (docs/protocol.md section 5, retained): what the device serves, what it is fetching or
// refused, the effective live config, and the desired version it applied. Published on connect,
// after every change (changes in one tick coalesce into one message) and on the reportState
// command; also kept in the agent's state so a reboot knows what was last reported.
import type { TimerHandle } from '../../runtime/base/clock.js';
import type { ErrorCode } from '../../runtime/base/errors.js';
import type { RuntimePort } from '../../runtime/port/runtime-port.js';
import type { IgnoredDesired, OutboxSummary, ReportedModel } from '../protocol/index.js';
import type { Connection } from './connection.js';
import type { HealthReport } from './health.js';
import type { StatusBook } from './model-update/status-book.js';
import { servedByName } from './served.js';
import { AGENT_KEYS } from './state-keys.js';

export interface ReportedModelEntry extends ReportedModel {
  /** Added to the contract's fields: what still serves while this entry is not "active". */
  active?: { version: number; sha256: string } | null;
}

export interface ReportedDocument {
  desiredVersion: number;
  models: Record<string, ReportedModelEntry>;
  config: Record<string, unknown>;
  /** Added: why the last desired config was refused (config stays the effective old one). */
  configError?: { code: ErrorCode; message: string };
  /** Added: the last desired document not applied (its version was not above desiredVersion). */
  ignored?: IgnoredDesired;
  ts: number;
  /** The device's event backlog (docs/protocol.md section 5, `outbox`), shown by `perch fleet devices`. */
  outbox: OutboxSummary;
  /** Config `device.labels`: what `perch fleet --select` targets by. */
  labels: Record<string, string>;
  /** In-service error rate and p99 latency per model version (health.ts); rollouts gate on it. */
  health?: HealthReport;
}

export interface DesiredView {
  version(): number;
  configError(): { code: ErrorCode; message: string } | null;
  ignored(): IgnoredDesired | null;
}

/** What of the runtime the reported document is made from. */
export type ReportedRuntime = Pick<RuntimePort, 'device' | 'clock' | 'log' | 'outbox' | 'state' | 'liveConfig' | 'models'>;

/** How often the backlog is looked at, and state/reported published again when it changed. */
export const BACKLOG_REPORT_MS = 30_000;

export class ReportedState {
  private scheduled = false;
  /** The backlog in the last published document, to publish again only when it changed. */
  private lastBacklog: { count: number; bytes: number } | null = null;
  private timer: TimerHandle | null = null;

  constructor(
    private readonly runtime: ReportedRuntime,
    private readonly conn: Connection,
    private readonly book: StatusBook,
    private readonly desired: DesiredView,
    /** Chunks staged of a download in progress (throttled by the download: once a second). */
    private readonly progress: (name: string) => { staged: number; total: number } | null = () => null,
    private readonly backlogReportMs = BACKLOG_REPORT_MS,
    private readonly health: () => HealthReport | null = () => null,
  ) {}

  /**
   * Watches the backlog: every backlogReportMs, state/reported goes out again if the outbox
   * count or bytes differ from the last one published (an offline backlog draining, or
   * growing while the uploads cannot keep up). Nothing is published while nothing changes.
   */
  start(): void {
    const tick = (): void => {
      this.timer = this.runtime.clock.setTimeout(tick, this.backlogReportMs);
      const { count, bytes } = this.runtime.outbox.stats();
      if (this.conn.online && (this.lastBacklog?.count !== count || this.lastBacklog.bytes !== bytes)) this.schedule();
    };
    if (this.timer === null) this.timer = this.runtime.clock.setTimeout(tick, this.backlogReportMs);
  }

  stop(): void {
    if (this.timer !== null) this.runtime.clock.clearTimeout(this.timer);
    this.timer = null;
  }

  build(): ReportedDocument {
    const models: Record<string, ReportedModelEntry> = {};
    const served = servedByName(this.runtime.models);
    for (const [name, m] of served) models[name] = { version: m.version, sha256: m.sha256, status: 'active' };
    for (const [name, e] of this.book.all()) {
      const s = served.get(name);
      if (s && s.version === e.version && s.sha256 === e.sha256 && e.status !== 'failed') continue;
      models[name] = {
        version: e.version,
        sha256: e.sha256,
        status: e.status,
        ...(e.error ? { error: e.error } : {}),
        active: s ? { version: s.version, sha256: s.sha256 } : null,
      };
      const p = e.status === 'downloading' ? this.progress(name) : null;
      if (p) models[name] = { ...models[name], progress: p } as ReportedModelEntry;
    }
    const configError = this.desired.configError();
    const { count, bytes, oldestAgeMs } = this.runtime.outbox.stats();
    const ignored = this.desired.ignored();
    const health = this.health();
    return {
      desiredVersion: this.desired.version(),
      models,
      config: this.runtime.liveConfig.current() as unknown as Record<string, unknown>,
      ...(configError ? { configError } : {}),
      ...(ignored ? { ignored } : {}),
      ts: this.runtime.clock.wallNow(),
      outbox: { count, bytes, oldestAgeMs },
      labels: this.runtime.device.labels,
      ...(health ? { health } : {}),
    };
  }

  /** Publishes once at the end of this tick, however many changes happen in it. */
  schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    queueMicrotask(() => {
      this.scheduled = false;
      this.publish().catch((err: unknown) => this.runtime.log.debug({ err }, 'state/reported not published'));
    });
  }

  async publish(): Promise<void> {
    const doc = this.build();
    try {
      this.runtime.state.set(AGENT_KEYS.reported, doc);
    } catch (err) {
      this.runtime.log.warn({ err }, 'reported state not persisted');
    }
    // Offline: the next connect publishes a fresh one.
    if (this.conn.online) {
      this.lastBacklog = { count: doc.outbox.count, bytes: doc.outbox.bytes ?? 0 };
      await this.conn.publish(this.conn.topics.reported, JSON.stringify(doc), { retain: true });
    }
  }
}
