// Device state: small JSON documents by key (the applied live config; the cloud agent's desired
// and reported state and download progress, in its own namespace). Writes are durable when set()
// returns. test/store/abstract/state-store-suite.ts checks any implementation.

export interface StateStore {
  /** The stored document, parsed, or undefined. */
  get<T = unknown>(key: string): T | undefined;
  /** Stores a JSON-serializable document; durable on return. Throws PERCH_ERR_STORE_* when it cannot be. */
  set(key: string, value: unknown): void;
  /** Deletes the document; true if there was one. Durable on return. */
  delete(key: string): boolean;
  /** Every key, sorted. */
  keys(): string[];
}

/**
 * The keys the runtime uses, in one place so no two modules spell them differently. The cloud
 * agent has its own namespace (`cloud.`, runtime/port/create-port.ts) and keeps its keys itself.
 */
export const STATE_KEYS = {
  /** The live config applied last, so a restart starts with it. */
  liveConfig: 'config.live',
} as const;
