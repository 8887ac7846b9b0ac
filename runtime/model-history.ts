// The last model changes (loaded, failed, unloaded, updates applied or failed, rollbacks) since
// the process started, for GET /v1/status and the console (docs/api.md): read from the events the
// runtime and the cloud agent record (type `model.*`), kept in memory, newest first.
import type { Bus } from './base/bus.js';
import type { Clock } from './base/clock.js';

export interface ModelChange {
  /** Wall-clock ms when the event was recorded. */
  at: number;
  seq: number;
  type: string;
  payload: unknown;
}

export class ModelHistory {
  private readonly changes: ModelChange[] = [];

  constructor(bus: Bus, clock: Clock, private readonly max = 20) {
    bus.on('event', (e) => {
      if (!e.type.startsWith('model.')) return;
      this.changes.unshift({ at: clock.wallNow(), seq: e.seq, type: e.type, payload: e.payload });
      if (this.changes.length > this.max) this.changes.pop();
    });
  }

  recent(): ModelChange[] {
    return this.changes.slice();
  }
}
