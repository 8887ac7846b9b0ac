// What the device knows about models it is updating or failed to update, for state/reported.
// Served models come from the runtime (port.models.served()); this book holds the rest:
// "downloading", "staged" and "failed" entries. It is persisted, so after a reboot the device
// still reports a failure, and does not fetch again a version that was refused or rolled back.
import type { ErrorCode } from '../../../runtime/errors.js';
import type { StateStore } from '../../../runtime/store/state-store.js';

export const STATUS_BOOK_KEY = 'cloud.models.status';

export interface BookEntry {
  version: number;
  sha256: string;
  status: 'downloading' | 'staged' | 'failed';
  error?: { code: ErrorCode; message: string };
}

/** Failures a later try cannot fix for the same file: the version is not fetched again. */
const TRANSIENT: ReadonlySet<ErrorCode> = new Set(['PERCH_ERR_MODEL_DOWNLOAD_FAILED', 'PERCH_ERR_BROKER_UNREACHABLE', 'PERCH_ERR_INTERNAL']);

export class StatusBook {
  private readonly entries: Map<string, BookEntry>;

  constructor(
    private readonly state: StateStore,
    private readonly onChange: () => void,
  ) {
    const saved = state.get<Record<string, BookEntry>>(STATUS_BOOK_KEY) ?? {};
    this.entries = new Map(Object.entries(saved));
  }

  get(name: string): BookEntry | undefined {
    return this.entries.get(name);
  }

  all(): [string, BookEntry][] {
    return [...this.entries];
  }

  set(name: string, entry: BookEntry): void {
    this.entries.set(name, entry);
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
    this.state.set(STATUS_BOOK_KEY, Object.fromEntries(this.entries));
    this.onChange();
  }
}
