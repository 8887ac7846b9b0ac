// Salvage of a database found corrupt at start-up (docs/store.md, "A corrupt file"): what SQLite
// can still read of it is copied into a fresh file before it is moved aside, so the acknowledged
// events of its outbox reach the fleet after all. better-sqlite3's SQLite has neither the
// sqlite_dbpage table nor the recovery extension (PRAGMA compile_options: no ENABLE_DBPAGE_VTAB),
// so this reads through SQLite's own b-trees row by row and steps over what errors: a damaged
// page costs the rows on it (or under it), not the table.
//
// What is copied: the outbox (every column, seqs and event ids kept: the fleet dedups on
// (device, seq), docs/fleet.md "How dedup works"), device_state, and the seq counter, which goes
// on above every seq the old file may have used. The result cache is not (computed again).
// Bounded: one deadline for the whole salvage, rows streamed through SQLite's page cache
// (PAGE_CACHE_KIB on both connections), one row in memory at a time, rows over a size cap skipped.
import Database from 'better-sqlite3';
import type { Database as Db, Statement } from 'better-sqlite3';
import { closeSync, openSync, readSync, statSync } from 'node:fs';
import type { Clock } from '../base/clock.js';
import { migrate, SCHEMA_VERSION } from './migrations.js';
import { PAGE_CACHE_KIB } from './pragmas.js';
import { isCorruptionError } from './store-errors.js';

export interface SalvageResult {
  /** Outbox events copied into the fresh file, with their seqs and event ids. */
  salvaged: number;
  /** Events the damaged file's created_at index lists whose rows could not be read (or were not valid). */
  lost: number;
  /** False when the index could not be read whole either (or the deadline came first): `lost` is a lower bound. */
  lostExact: boolean;
  /** device_state documents copied. */
  stateKeys: number;
  /** The fresh file's seq counter: the next event gets lastSeq + 1. */
  lastSeq: number;
  /** How the counter was found: read from the file, or estimated above anything it can have held. */
  counter: 'read' | 'estimated';
  /** True when the deadline stopped the copy; what was not reached is in the corrupt copy only. */
  timedOut: boolean;
  /** Why nothing could be read (not a database, no readable schema). */
  unreadable?: string;
  ms: number;
}

export interface SalvageOptions {
  clock: Clock;
  /** Budget for the outbox (device state gets STATE_GRACE_MS more). */
  timeoutMs: number;
  /** Largest payload copied (bytes); a row claiming more is taken as damage, not read. */
  maxPayloadBytes: number;
}

/** UUID as randomUUID makes them (the outbox never stores another kind). */
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const TRACEPARENT = /^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$/;
const MAX_TYPE_BYTES = 1024;
const MAX_STATE_BYTES = 16 * 1024 * 1024;
const STATE_GRACE_MS = 1000;
/**
 * The fewest bytes one outbox row takes in a table leaf (cell pointer, header, a 36-char UUID, a
 * 1-char type, a 1-char payload, created_at): the most rows a page can hold is pageSize / this.
 */
const MIN_ROW_BYTES = 50;

const SQLITE_MAGIC = Buffer.from('SQLite format 3\0', 'latin1');

/**
 * Copies what can be read of `source` (left as it is, its -wal applied) into a new database at
 * `target` (an empty or new file; schema SCHEMA_VERSION, the copy one transaction). Damage in
 * `source` is stepped over; what throws is `target` not being writable, or an error from `source`
 * that is not damage (an I/O error): the caller then moves the file aside unread.
 */
export function salvageDatabase(source: string, target: string, opts: SalvageOptions): SalvageResult {
  const started = opts.clock.now();
  const deadline = started + opts.timeoutMs;
  const result: SalvageResult = { salvaged: 0, lost: 0, lostExact: true, stateKeys: 0, lastSeq: 0, counter: 'read', timedOut: false, ms: 0 };
  let from: Db | undefined;
  const why = hasHeader(source) ? undefined : 'not a database (no SQLite header)';
  if (why === undefined) {
    try {
      from = new Database(source, { readonly: true, fileMustExist: true });
      from.pragma(`cache_size = -${PAGE_CACHE_KIB}`);
      from.pragma('query_only = ON');
    } catch (err) {
      from?.close();
      from = undefined;
      result.unreadable = message(err);
    }
  } else {
    result.unreadable = why;
  }
  let to: Db | undefined;
  try {
    to = new Database(target);
    to.pragma(`cache_size = -${PAGE_CACHE_KIB}`);
    migrate(to);
    const into = to;
    into.transaction(() => {
      const copy = new Copy(from, into, deadline, opts, result);
      if (from) copy.run();
      const counter = copy.counter(source, opts.clock.wallNow());
      result.lastSeq = counter.seq;
      result.counter = counter.exact ? 'read' : 'estimated';
      into.prepare("UPDATE meta SET value = ? WHERE key = 'outbox.last_seq'").run(counter.seq);
    })();
  } finally {
    to?.close();
    if (from) closeQuietly(from);
    result.ms = Math.round(opts.clock.now() - started);
  }
  return result;
}

class Copy {
  /** Largest seq seen anywhere in the old file (rows, index entries, meta). */
  private maxSeq = 0;
  private metaRead = false;
  private tailRead = false;
  private indexWhole = false;

  constructor(
    private readonly from: Db | undefined,
    private readonly to: Db,
    private readonly deadline: number,
    private readonly opts: SalvageOptions,
    private readonly result: SalvageResult,
  ) {}

  private get late(): boolean {
    return this.lateBy(0);
  }

  private lateBy(graceMs: number): boolean {
    if (this.opts.clock.now() < this.deadline + graceMs) return false;
    this.result.timedOut = true;
    return true;
  }

  run(): void {
    const from = this.from;
    if (!from) return;
    let columns: Set<string>;
    try {
      columns = new Set((from.pragma('table_info(outbox)') as Array<{ name: string }>).map((c) => c.name));
      const v = Number(from.pragma('user_version', { simple: true }));
      if (v > SCHEMA_VERSION) throw new Error(`schema version ${v} is newer than this runtime's ${SCHEMA_VERSION}`);
    } catch (err) {
      this.result.unreadable = message(err);
      return;
    }
    this.readMeta(from);
    if (columns.has('seq')) {
      this.copyOutbox(from, columns.has('traceparent'));
      this.countLost(from);
      try {
        const max = from.prepare('SELECT max(seq) FROM outbox').pluck().get() as number | null;
        this.tailRead = true;
        this.noteSeq(max ?? 0);
      } catch (err) {
        if (!isCorruptionError(err)) throw err;
      }
    }
    this.copyState(from);
  }

  private noteSeq(seq: number): void {
    if (Number.isSafeInteger(seq) && seq > this.maxSeq) this.maxSeq = seq;
  }

  private readMeta(from: Db): void {
    try {
      const v = from.prepare("SELECT value FROM meta WHERE key = 'outbox.last_seq'").pluck().get();
      if (typeof v === 'number' || typeof v === 'bigint') {
        this.noteSeq(Number(v));
        this.metaRead = true;
      }
    } catch (err) {
      if (!isCorruptionError(err) && !/no such table/.test(message(err))) throw err;
    }
  }

  /** Every outbox row SQLite can read, in seq order, each checked before it is copied. */
  private copyOutbox(from: Db, hasTraceparent: boolean): void {
    const cap = this.opts.maxPayloadBytes;
    const scan = from.prepare(
      `SELECT seq, event_id, type, payload, created_at, ${hasTraceparent ? 'traceparent' : 'NULL'}
         FROM outbox WHERE seq >= ? AND octet_length(payload) <= ${cap} AND octet_length(type) <= ${MAX_TYPE_BYTES}
           AND octet_length(event_id) <= 64 ORDER BY seq`,
    ).raw();
    const probe = from.prepare('SELECT seq FROM outbox WHERE seq >= ? ORDER BY seq LIMIT 1').pluck();
    const insert = this.to.prepare('INSERT INTO outbox (seq, event_id, type, payload, created_at, bytes, traceparent) VALUES (?, ?, ?, ?, ?, ?, ?)');
    skipScan<unknown[]>(scan, probe, () => this.late, (row) => {
      const [seq, eventId, type, payload, createdAt, traceparent] = row;
      if (!Number.isSafeInteger(seq)) return undefined;
      const valid =
        (seq as number) >= 1 &&
        typeof eventId === 'string' && UUID.test(eventId) &&
        typeof type === 'string' && type.length > 0 &&
        typeof payload === 'string' && isJson(payload) &&
        Number.isSafeInteger(createdAt);
      if (valid) {
        const tp = typeof traceparent === 'string' && TRACEPARENT.test(traceparent) ? traceparent : null;
        insert.run(seq, eventId, type, payload, createdAt, Buffer.byteLength(type) + Buffer.byteLength(payload), tp);
        this.result.salvaged++;
        this.noteSeq(seq as number);
      }
      return seq as number;
    });
  }

  /**
   * The created_at index lists (created_at, seq) of every event apart from the table's pages: its
   * seqs not copied are the events lost, and its largest seq bounds the counter when the table's
   * last page is the damaged one. Read as a covering index, so no table page is touched.
   */
  private countLost(from: Db): void {
    let scan: Statement;
    let probe: Statement;
    try {
      scan = from.prepare('SELECT created_at, seq FROM outbox INDEXED BY outbox_created_at WHERE created_at >= ? ORDER BY created_at, seq').raw();
      probe = from.prepare('SELECT created_at FROM outbox INDEXED BY outbox_created_at WHERE created_at >= ? ORDER BY created_at LIMIT 1').pluck();
    } catch {
      this.result.lostExact = false; // no index: nothing says what the damaged pages held
      return;
    }
    const copied = this.to.prepare('SELECT 1 FROM outbox WHERE seq = ?').pluck();
    const whole = skipScan<[number, number]>(scan, probe, () => this.late, ([createdAt, seq]) => {
      if (!Number.isSafeInteger(createdAt)) return undefined;
      if (Number.isSafeInteger(seq) && seq >= 1) {
        this.noteSeq(seq);
        if (copied.get(seq) === undefined) this.result.lost++;
      }
      return createdAt;
    });
    this.indexWhole = whole;
    if (!whole) this.result.lostExact = false;
  }

  private copyState(from: Db): void {
    let scan: Statement;
    let probe: Statement;
    try {
      scan = from.prepare(`SELECT rowid, key, value, updated_at FROM device_state WHERE rowid >= ? AND octet_length(value) <= ${MAX_STATE_BYTES} ORDER BY rowid`).raw();
      probe = from.prepare('SELECT rowid FROM device_state WHERE rowid >= ? ORDER BY rowid LIMIT 1').pluck();
    } catch {
      return;
    }
    const insert = this.to.prepare('INSERT INTO device_state (key, value, updated_at) VALUES (?, ?, ?) ON CONFLICT (key) DO NOTHING');
    // A few documents, and the ones a device cannot do without (its live config, the cloud
    // agent's state): they get a grace past the deadline a long outbox copy may have used up.
    skipScan<unknown[]>(scan, probe, () => this.lateBy(STATE_GRACE_MS), ([rowid, key, value, updatedAt]) => {
      if (!Number.isSafeInteger(rowid)) return undefined;
      if (typeof key === 'string' && key.length > 0 && typeof value === 'string' && isJson(value) && Number.isSafeInteger(updatedAt)) {
        if (insert.run(key, value, updatedAt).changes === 1) this.result.stateKeys++;
      }
      return rowid as number;
    });
  }

  /**
   * The counter of the fresh file. Read when meta was read and the table's last page (or the
   * whole index) was: the larger of meta and every seq seen. Otherwise events may have used seqs
   * nothing readable names, and reusing one would make the fleet drop a new event as a
   * duplicate of an old one; so it goes past anything the file can have held (pages x rows per
   * page) and past the wall clock in ms, which no device reaches by counting events.
   */
  counter(source: string, wallNow: number): { seq: number; exact: boolean } {
    if (this.metaRead && (this.tailRead || this.indexWhole)) return { seq: this.maxSeq, exact: true };
    let bound = 0;
    for (const f of [source, `${source}-wal`]) {
      try {
        bound += Math.ceil(statSync(f).size / MIN_ROW_BYTES);
      } catch {
        // no -wal
      }
    }
    return { seq: Math.max(this.maxSeq + bound, Math.trunc(wallNow)), exact: false };
  }
}

/**
 * Rows of `scan` (`... WHERE key >= ? ORDER BY key`) in key order, stepping over what SQLite
 * cannot read. `take` handles a row (copying it only if valid) and returns its key (undefined
 * when the key itself is not an integer). After an error the scan starts again at the next key a
 * seek reads (nextReadable) past the last key read, or past the key it started at when it read
 * nothing (a row whose own cell or overflow chain is damaged on an intact page). Each restart is
 * past the one before, so the loop ends; the deadline ends it sooner.
 * Returns true when everything was read without an error.
 */
function skipScan<R>(scan: Statement, probe: Statement, late: () => boolean, take: (row: R) => number | undefined): boolean {
  let after = Number.MIN_SAFE_INTEGER; // the largest key read
  let from = after;
  let clean = true;
  for (;;) {
    let read = false;
    try {
      for (const row of scan.iterate(from) as IterableIterator<R>) {
        if (late()) return false;
        read = true;
        const key = take(row);
        if (key !== undefined && key > after) after = key;
      }
      return clean;
    } catch (err) {
      if (!isCorruptionError(err)) throw err;
      clean = false;
      if (late()) return false;
      const next = nextReadable(probe, read ? after : Math.max(after, from));
      if (next === undefined) return false;
      from = next;
    }
  }
}

/**
 * The first key > `after` that a seek reads without an error, or undefined: seeks at after + 1,
 * + 2, + 4... until one succeeds, then halving back to the first that does, so the rows on the
 * next intact page are not stepped over (seeks into a damaged page fail, seeks past it do not).
 * In the created_at index the rows after the damage that share its last key are.
 */
function nextReadable(probe: Statement, after: number): number | undefined {
  type Seek = { ok: true; key: number | undefined } | { ok: false };
  const seek = (x: number): Seek => {
    try {
      const k = probe.get(x) as number | undefined;
      return { ok: true, key: k === undefined || k === null ? undefined : Number(k) };
    } catch (err) {
      if (!isCorruptionError(err)) throw err;
      return { ok: false };
    }
  };
  const base = after === Number.MIN_SAFE_INTEGER ? 0 : after; // keys are >= 1: seqs, rowids, epoch ms
  let bad = base; // a seek at bad fails (or is the last key read)
  let step = 1;
  for (; !seek(base + step).ok; step *= 2) {
    bad = base + step;
    if (base + step * 2 > Number.MAX_SAFE_INTEGER) return undefined;
  }
  let good = base + step;
  while (good - bad > 1) {
    const mid: number = bad + Math.floor((good - bad) / 2);
    if (seek(mid).ok) good = mid;
    else bad = mid;
  }
  const s = seek(good);
  return s.ok ? s.key : undefined;
}

function hasHeader(file: string): boolean {
  try {
    const fd = openSync(file, 'r');
    try {
      const head = Buffer.alloc(SQLITE_MAGIC.length);
      return readSync(fd, head, 0, head.length, 0) === head.length && head.equals(SQLITE_MAGIC);
    } finally {
      closeSync(fd);
    }
  } catch {
    return false;
  }
}

function isJson(text: string): boolean {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}

function closeQuietly(db: Db): void {
  try {
    db.close();
  } catch {
    // a damaged file may fail even here; nothing was written to it
  }
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
