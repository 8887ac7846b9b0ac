// The live config (docs/protocol.md section 5) as the running runtime holds it: a document is
// applied whole or not at all, to the log level and the served models' overrides; persisted, so
// a reboot keeps it; recorded as an event, so the cloud sees it. Validating a document is
// config/live-config.ts; this is what a valid one changes.
import { isDeepStrictEqual } from 'node:util';
import type { Logger } from './base/log.js';
import { liveOf, validateLive, type LiveConfig, type LiveConfigResult } from './config/live-config.js';
import type { PerchConfig } from './config/schema.js';
import type { ModelOverrides } from './models/model-config.js';
import { STATE_KEYS, type StateStore } from './store/state-store.js';

export interface LiveSettingsParts {
  config: Readonly<PerchConfig>;
  log: Logger;
  state: Pick<StateStore, 'get' | 'set'>;
  /** Records config.applied / config.rejected (events/event-log.ts). */
  record: (type: string, payload: unknown) => void;
  /** Why new `models.overrides` cannot go over the versions serving now (one line each). */
  overridesIssues: (all: Readonly<Record<string, ModelOverrides>>) => string[];
  /** Gives new `models.overrides` to the versions serving now. */
  applyOverrides: (all: Readonly<Record<string, ModelOverrides>>) => void;
}

export class LiveSettings {
  private live: LiveConfig;

  constructor(private readonly parts: LiveSettingsParts) {
    this.live = liveOf(parts.config);
  }

  get current(): LiveConfig {
    return this.live;
  }

  /** Validates `partial` over the current settings and applies it if all of it is valid. */
  apply(partial: unknown, record = true): LiveConfigResult {
    const { config, log, state } = this.parts;
    const current = { ...config, log: this.live.log, models: { ...config.models, overrides: this.live.models.overrides }, cloud: { ...config.cloud, upload: this.live.cloud.upload } };
    let r = validateLive(current, partial);
    // Valid alone, but contradicting a served model.json: refused whole like any other issue.
    const issues = r.ok ? this.parts.overridesIssues(r.effective.models.overrides) : [];
    if (issues.length > 0) r = { ok: false, error: { code: 'PERCH_ERR_LIVE_CONFIG_INVALID', message: `live config refused:\n${issues.join('\n')}` } };
    if (!r.ok) {
      if (record) this.parts.record('config.rejected', r.error);
      return r;
    }
    // The fleet tool re-sends the whole config with every desired document: a document that
    // leaves the settings as they are is valid, but nothing is applied or recorded for it.
    if (isDeepStrictEqual(r.effective, this.live)) return r;
    this.live = r.effective;
    log.level = r.effective.log.level;
    this.parts.applyOverrides(r.effective.models.overrides);
    try {
      state.set(STATE_KEYS.liveConfig, r.effective);
    } catch (err) {
      log.warn({ err }, 'live config applied but not persisted (store read-only or full)');
    }
    if (record) this.parts.record('config.applied', r.effective);
    return r;
  }

  /** The live config applied before a reboot still holds (call before models load: overrides). */
  restoreSaved(): void {
    const saved = this.parts.state.get(STATE_KEYS.liveConfig);
    if (saved === undefined) return;
    const r = this.apply(saved, false);
    if (!r.ok) this.parts.log.warn({ err: r.error.message }, 'saved live config no longer valid; using the config file');
  }
}
