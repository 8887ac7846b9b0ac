// Device state: small JSON documents by key (desired and reported state, the applied live config,
// the model versions in use). Writes are durable when set() returns. test/store/abstract/
// state-store-suite.ts checks any implementation.

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

/** The keys the runtime uses, in one place so no two modules spell them differently. */
export const STATE_KEYS = {
  /** Desired state document from the control plane (docs/protocol.md section 5). */
  desired: 'shadow.desired',
  /** Last reported state document. */
  reported: 'shadow.reported',
  /** The live config applied last, so a restart starts with it. */
  liveConfig: 'config.live',
  /** Model name -> version in use, so a restart serves what was swapped in. */
  modelVersions: 'models.versions',
} as const;
