// The agent's keys in its own namespace of the state store (RuntimePort.state; the runtime stores
// them under `cloud.`, docs/cloud-sync.md "What the device keeps"). In one place, so no two files
// spell one differently.
export const AGENT_KEYS = {
  /** The desired document last received and how far it was applied (desired-state.ts). */
  desired: 'desired',
  /** The reported document last published (reported-state.ts). */
  reported: 'reported',
  /** Per model: downloading / staged / failed with its error (model-update/status-book.ts). */
  modelStatus: 'models.status',
  /** A download's progress, for reporting; the staging journal is the truth (model-update/download.ts). */
  download: (model: string): string => `download.${model}`,
} as const;
