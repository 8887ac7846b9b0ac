// What the device knows about models it is updating or failed to update, for state/reported.
// Served models come from the runtime (RuntimePort.models.served()); this book holds the rest:
// "downloading", "staged" and "failed" entries. It is persisted, so after a reboot the device
// still reports a failure, and does not fetch again a version that was refused or rolled back.
import { toPerchError, type ErrorCode } from '../../../runtime/base/errors.js';
import type { Logger } from '../../../runtime/base/log.js';
import type { StateStore } from '../../../runtime/port/runtime-port.js';
import { MAX_DESIRED_MODELS } from '../../protocol/index.js';
import { AGENT_KEYS } from '../state-keys.js';

export interface BookEntry {
  version: number;
  sha256: string;
  status: 'downloading' | 'staged' | 'failed';
  error?: { code: ErrorCode; message: string };
}

/**
 * Failures that do not make a file refused for good (the others are final: the same file is not
 * fetched again): those a later try may not hit, and those of the checks made before any
 * download (version, signature, size, space), which cost nothing to make again and may pass for
 * another spec of the same file (a model.json signed this time, a disk with room again).
 */
const TRANSIENT: ReadonlySet<ErrorCode> = new Set([
  'PERCH_ERR_MODEL_DOWNLOAD_FAILED', 'PERCH_ERR_MODEL_CHUNK_MISMATCH', 'PERCH_ERR_BROKER_UNREACHABLE', 'PERCH_ERR_INTERNAL',
  'PERCH_ERR_MODEL_DOWNGRADE', 'PERCH_ERR_MODEL_UNSIGNED', 'PERCH_ERR_MODEL_SIGNATURE_INVALID', 'PERCH_ERR_MODEL_CONFIG_UNSIGNED',
  'PERCH_ERR_MODEL_TOO_LARGE', 'PERCH_ERR_MODEL_NO_SPACE', 'PERCH_ERR_MODEL_CHUNK_SIZE_INVALID',
]);

/**
 * Entries kept, at most: a failure stays reported until a document names its model again, so
 * documents each naming other models (MAX_DESIRED_MODELS at most each) would otherwise grow the
 * book, and every state/reported, without end. Past this the oldest failures are dropped.
 */
export const MAX_BOOK_ENTRIES = 2 * MAX_DESIRED_MODELS;

export class StatusBook {
  private readonly entries: Map<string, BookEntry>;

  constructor(
    private readonly state: StateStore,
    private readonly onChange: () => void,
    private readonly log: Logger,
  ) {
    let saved: Record<string, BookEntry> = {};
    try {
      saved = state.get<Record<string, BookEntry>>(AGENT_KEYS.modelStatus) ?? {};
    } catch (err) {
      log.warn({ code: toPerchError(err).code, err: toPerchError(err).message }, 'model status book not read; starting empty');
    }
    this.entries = new Map(Object.entries(saved));
  }

  get(name: string): BookEntry | undefined {
    return this.entries.get(name);
  }

  all(): [string, BookEntry][] {
    return [...this.entries];
  }

  set(name: string, entry: BookEntry): void {
    // Re-inserted, so the Map's order is the order of the last change (oldest first).
    this.entries.delete(name);
    this.entries.set(name, entry);
    if (this.entries.size > MAX_BOOK_ENTRIES) {
      for (const [n, e] of this.entries) {
        if (this.entries.size <= MAX_BOOK_ENTRIES) break;
        if (e.status === 'failed' && n !== name) this.entries.delete(n);
      }
    }
    this.save();
  }

  clear(name: string): void {
    if (this.entries.delete(name)) this.save();
  }

  /** True when exactly this file already failed for good (verification, load, rollback). */
  refused(name: string, version: number, sha256: string): boolean {
    const e = this.entries.get(name);
    return e?.status === 'failed' && e.version === version && e.sha256 === sha256 && !TRANSIENT.has(e.error?.code ?? 'PERCH_ERR_INTERNAL');
  }

  private save(): void {
    try {
      this.state.set(AGENT_KEYS.modelStatus, Object.fromEntries(this.entries));
    } catch (err) {
      // A full disk or a read-only store must not stop an update, nor the process: the book
      // still reports from memory; only a reboot would forget it.
      const e = toPerchError(err);
      this.log.warn({ code: e.code, err: e.message }, 'model status not persisted');
    }
    this.onChange();
  }
}
