// Damage to a real SQLite file, the way a bad sector or a stray write does it: whole pages
// overwritten. Which pages hold what is asked of SQLite itself (dbstat) or read from the file
// format (a table leaf's rowids), so a test knows exactly which rows it destroyed.
import Database from 'better-sqlite3';
import assert from 'node:assert/strict';
import { closeSync, openSync, writeSync } from 'node:fs';

/** Pages of `table`'s b-tree (dbstat: what SQLite itself says), in key order. */
export function pagesOf(file: string, table: string, type: 'leaf' | 'internal' | 'overflow'): number[] {
  const db = new Database(file, { readonly: true });
  try {
    return db.prepare('SELECT pageno FROM dbstat WHERE name = ? AND pagetype = ? ORDER BY path').pluck().all(table, type) as number[];
  } finally {
    db.close();
  }
}

/** The store's page size (SQLite's default; better-sqlite3 compiles it in). */
export const PAGE = 4096;

/** The rowids on a table leaf page of a file image (file format: page type 0x0d, cell pointers, varints). */
export function leafRowids(image: Buffer, pageno: number): number[] {
  const page = image.subarray((pageno - 1) * PAGE, pageno * PAGE);
  assert.equal(page[0], 0x0d, `page ${pageno} is a table leaf`);
  const varint = (at: number): [number, number] => {
    let v = 0;
    for (let i = 0; i < 8; i++) {
      const b = page[at + i] ?? 0;
      v = v * 128 + (b & 0x7f);
      if ((b & 0x80) === 0) return [v, at + i + 1];
    }
    return [v * 256 + (page[at + 8] ?? 0), at + 9];
  };
  const cells = page.readUInt16BE(3);
  return Array.from({ length: cells }, (_, i) => {
    const [, next] = varint(page.readUInt16BE(8 + 2 * i)); // payload length, then the rowid
    return varint(next)[0];
  });
}

export function overwritePages(file: string, pages: number[], byte = 0xa5): void {
  const fd = openSync(file, 'r+');
  try {
    for (const p of pages) writeSync(fd, Buffer.alloc(PAGE, byte), 0, PAGE, (p - 1) * PAGE);
  } finally {
    closeSync(fd);
  }
}
