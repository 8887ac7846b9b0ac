// A small typed event bus between modules (KubeEdge edgecore style): modules publish facts
// (a model changed state, connectivity changed) and others react, without knowing each other.
import { EventEmitter } from 'node:events';
import type { ErrorCode } from './errors.js';

export interface BusEvents {
  /** A model version changed state (loaded, failed, unloaded, swapped in). */
  model: { name: string; version: number | null; state: 'ready' | 'failed' | 'unloaded'; error?: { code: ErrorCode; message: string } };
  connectivity: { state: 'online' | 'offline' | 'disabled' };
  /**
   * The last desired document the cloud agent did not apply (its state/reported `ignored`), or
   * null once one is applied: GET /v1/status and the web console show it (docs/api.md).
   */
  cloudIgnored: { note: IgnoredNote | null };
  /** An event was made durable in the outbox (by `emit` or by the runtime itself). */
  event: { eventId: string; seq: number; type: string; payload: unknown };
}

/** A desired document not applied: its version, the code and the device's own bounded words. */
export interface IgnoredNote {
  version: number;
  code?: string;
  reason: string;
}

export class Bus {
  private readonly emitter = new EventEmitter();

  constructor() {
    // Every WebSocket subscriber adds a listener.
    this.emitter.setMaxListeners(0);
  }

  emit<K extends keyof BusEvents>(topic: K, data: BusEvents[K]): void {
    this.emitter.emit(topic, data);
  }

  on<K extends keyof BusEvents>(topic: K, fn: (data: BusEvents[K]) => void): () => void {
    this.emitter.on(topic, fn);
    return () => this.emitter.off(topic, fn);
  }
}
