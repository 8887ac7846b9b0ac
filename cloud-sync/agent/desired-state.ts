// state/desired (docs/protocol.md section 5, retained): versions only rise; a document is persisted in
// the agent's state BEFORE anything of it is acted on, so a reboot while offline keeps it and the agent
// resumes it at start (downloads continue from staged chunks). Named models are brought to their
// ModelSpec (or removed for null); models not named are left alone; `config` goes to the live
// config whole or not at all. A document not applied (stale, too many models, refused unread) is said
// in state/reported `ignored` with a code; the latest one is what is said, at most once per
// IGNORED_REPORT_MS, so a flood of bad documents costs one bounded note, not a publish each.
import type { TimerHandle } from '../../runtime/base/clock.js';
import type { ErrorCode } from '../../runtime/base/errors.js';
import { sinceLastLine, type LogLimiter } from '../../runtime/base/log-limit.js';
import type { RuntimePort } from '../../runtime/port/runtime-port.js';
import { canonicalJson, MAX_DESIRED_MODELS, type DesiredState, type IgnoredDesired } from '../protocol/index.js';
import type { ModelUpdater } from './model-update/updater.js';
import type { DesiredView } from './reported-state.js';
import { servedByName } from './served.js';
import { AGENT_KEYS } from './state-keys.js';
import type { AgentStats } from './stats.js';

/** What of the runtime the applier uses. */
export type DesiredRuntime = Pick<RuntimePort, 'state' | 'log' | 'liveConfig' | 'events' | 'models' | 'clock' | 'cloudStatus'>;

/** An `ignored` note goes to state/reported at most this often (the latest one; docs/cloud-sync.md). */
export const IGNORED_REPORT_MS = 1000;

/** What the agent's state keeps under AGENT_KEYS.desired. */
export interface SavedDesired {
  version: number;
  doc: DesiredState;
  /** False between persisting the document and applying its config (a crash in between re-applies). */
  configDone: boolean;
  configError: { code: ErrorCode; message: string } | null;
  /** The last document not applied, and why (state/reported `ignored`); cleared by the next applied one. */
  ignored?: IgnoredDesired | null;
}

export class DesiredStateApplier implements DesiredView {
  private saved: SavedDesired | null;
  /** A document ignored before any was applied (nothing saved to hang it on): reported from memory. */
  private ignoredFirst: IgnoredDesired | null = null;
  /**
   * The last document refused unread (oversized, not JSON, breaks the schema), newer than any
   * other note. Memory only: the broker delivers its retained document again after a restart.
   */
  private refused: IgnoredDesired | null = null;
  private noteTimer: TimerHandle | null = null;
  private lastNoteAt = -Infinity;

  constructor(
    private readonly runtime: DesiredRuntime,
    private readonly stats: AgentStats,
    private readonly updater: ModelUpdater,
    private readonly changed: () => void,
    /** Lines of documents not applied, a few per interval however many come (log-limit.ts). */
    private readonly limiter: LogLimiter,
  ) {
    this.saved = runtime.state.get<SavedDesired>(AGENT_KEYS.desired) ?? null;
  }

  version(): number {
    return this.saved?.version ?? 0;
  }

  configError(): { code: ErrorCode; message: string } | null {
    return this.saved?.configError ?? null;
  }

  ignored(): IgnoredDesired | null {
    return this.refused ?? this.saved?.ignored ?? this.ignoredFirst;
  }

  /** A document refused before it could be read as one (inbound.ts): the latest is reported. */
  refuse(note: IgnoredDesired): void {
    this.refused = note;
    this.noteChanged();
  }

  stop(): void {
    if (this.noteTimer !== null) this.runtime.clock.clearTimeout(this.noteTimer);
    this.noteTimer = null;
  }

  /** At start: the document applied last (maybe received just before a reboot) is carried on. */
  resume(): void {
    this.tellRuntime(); // a note persisted before a restart
    if (!this.saved) return;
    this.runtime.log.info({ desiredVersion: this.saved.version }, 'resuming the persisted desired state');
    this.apply(this.saved);
  }

  receive(doc: DesiredState): void {
    const last = this.version();
    if (doc.version <= last) {
      this.stats.ignored.staleDesired++;
      // The retained document comes again at every subscribe: the one applied, nothing to say.
      if (this.saved && doc.version === last && canonicalJson(doc) === canonicalJson(this.saved.doc)) {
        this.runtime.log.debug({ version: doc.version }, 'desired state already applied');
        return;
      }
      // Anything else not above is a replayed old document or a fleet whose counter went back:
      // said in state/reported, so `perch fleet push --wait` and `devices` show it.
      const reason = `desired version ${doc.version} is not above version ${last}, the one applied (a replayed or out-of-date document)`;
      this.limiter.line('desired stale', (n) =>
        this.runtime.log.warn({ code: 'PERCH_ERR_DESIRED_STALE', version: doc.version, applied: last, ...sinceLastLine(n) }, 'desired state ignored: version not above the applied one'),
      );
      this.ignore({ version: doc.version, code: 'PERCH_ERR_DESIRED_STALE', reason });
      return;
    }
    const specs = Object.values(doc.models).filter((s) => s !== null).length;
    if (specs > MAX_DESIRED_MODELS) {
      this.stats.ignored.schema++;
      const reason = `desired version ${doc.version} names ${specs} models to serve, over ${MAX_DESIRED_MODELS}`;
      this.limiter.line('desired too many models', (n) =>
        this.runtime.log.warn({ code: 'PERCH_ERR_MQTT_PAYLOAD_INVALID', version: doc.version, models: specs, ...sinceLastLine(n) }, 'desired state ignored: too many models'),
      );
      this.ignore({ version: doc.version, code: 'PERCH_ERR_MQTT_PAYLOAD_INVALID', reason });
      return;
    }
    this.ignoredFirst = null;
    this.refused = null;
    this.stop(); // this change is published now, with no note
    const saved: SavedDesired = { version: doc.version, doc, configDone: false, configError: null, ignored: null };
    this.persist(saved);
    this.tellRuntime(); // no note now
    this.stats.desiredApplied++;
    this.runtime.log.info({ version: doc.version, models: Object.keys(doc.models) }, 'applying desired state');
    this.apply(saved);
  }

  private apply(saved: SavedDesired): void {
    const { doc } = saved;
    if (!saved.configDone) {
      saved.configError = null;
      // An empty config changes nothing; applying it would only add a config event per document.
      if (Object.keys(doc.config).length > 0) {
        const r = this.runtime.liveConfig.apply(doc.config);
        if (!r.ok) {
          saved.configError = r.error;
          const { code, message } = r.error;
          this.limiter.line('desired config rejected', (n) =>
            this.runtime.log.warn({ code, err: message, desiredVersion: doc.version, ...sinceLastLine(n) }, 'desired live config rejected whole'),
          );
          this.runtime.events.record('desired.config.rejected', { desiredVersion: doc.version, ...r.error });
        }
      }
      saved.configDone = true;
      this.persist(saved);
    }
    const servedNames = new Set(servedByName(this.runtime.models).keys());
    for (const [name, spec] of Object.entries(doc.models)) {
      if (spec) {
        this.updater.ensure(name, spec);
      } else if (servedNames.has(name) || this.updater.isUpdating(name)) {
        this.updater.remove(name).catch((err: unknown) => this.runtime.log.error({ err, model: name }, 'model not removed'));
      } else {
        // Not served: only an old failure of it may still be reported.
        this.updater.forget(name);
      }
    }
    this.changed();
  }

  /** Said in state/reported, so `perch fleet push --wait` and `devices` show it. */
  private ignore(note: IgnoredDesired): void {
    this.refused = null;
    if (this.saved) this.persist({ ...this.saved, ignored: note });
    else this.ignoredFirst = note;
    this.noteChanged();
  }

  /** state/reported is told at once, or at the end of this IGNORED_REPORT_MS: whatever note is latest then. */
  private noteChanged(): void {
    if (this.noteTimer !== null) return;
    const { clock } = this.runtime;
    const wait = this.lastNoteAt + IGNORED_REPORT_MS - clock.now();
    const tell = (): void => {
      this.noteTimer = null;
      this.lastNoteAt = clock.now();
      this.tellRuntime();
      this.changed();
    };
    if (wait <= 0) tell();
    else this.noteTimer = clock.setTimeout(tell, wait);
  }

  /** The device's own status and web console show the note too (GET /v1/status `cloud.ignored`). */
  private tellRuntime(): void {
    this.runtime.cloudStatus.ignored(this.ignored());
  }

  private persist(saved: SavedDesired): void {
    this.saved = saved;
    try {
      this.runtime.state.set(AGENT_KEYS.desired, saved);
    } catch (err) {
      // Applied anyway: the device does what the cloud says even on a read-only store.
      this.runtime.log.warn({ err }, 'desired state not persisted');
    }
  }
}
