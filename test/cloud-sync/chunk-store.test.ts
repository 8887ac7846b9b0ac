// Staging on disk (chunk-store.ts, stager.ts) with real files: only committed chunks count after
// a restart, a torn journal tail names nothing, and the staged file is the model once complete.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { appendFileSync, cpSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ChunkStore } from '../../cloud-sync/agent/model-update/chunk-store.js';
import { ChunkStager } from '../../cloud-sync/agent/model-update/stager.js';
import { sha256 } from './helpers/models.js';

const CHUNK = 1000;
const MODEL = randomBytes(10 * CHUNK + 123); // 11 chunks, the last one short
const TOTAL = Math.ceil(MODEL.length / CHUNK);
const chunk = (i: number) => MODEL.subarray(i * CHUNK, (i + 1) * CHUNK);

async function withStaging(fn: (dir: string, store: () => ChunkStore) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'perch-staging-'));
  try {
    await fn(dir, () => new ChunkStore(dir, 'm', 2, sha256(MODEL), CHUNK));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

void test('only committed chunks are staged for the next process; written ones are fetched again', () =>
  withStaging(async (_dir, open) => {
    const a = open();
    a.ensure();
    assert.equal(a.scan(TOTAL).size, 0);
    await a.open();
    for (const i of [0, 1, 2, 5, 7]) await a.write(i, chunk(i));
    await a.commit([0, 1, 2]);
    await a.write(10, chunk(10));
    await a.commit([10]);
    // 5 and 7 are written but never committed: a kill now.
    await a.close();
    assert.deepEqual([...open().scan(TOTAL)].sort((x, y) => x - y), [0, 1, 2, 10]);
    // Resumed: the rest written into the same file; then it is the model.
    const b = open();
    await b.open();
    for (let i = 0; i < TOTAL; i++) if (![0, 1, 2, 10].includes(i)) await b.write(i, chunk(i));
    await b.commit([3, 4, 5, 6, 7, 8, 9]);
    await b.close();
    assert.equal(open().scan(TOTAL).size, TOTAL);
    assert.deepEqual(await open().measure(), { size: MODEL.length, sha256: sha256(MODEL) });
  }));

void test('a torn or zeroed journal tail names no chunk', () =>
  withStaging(async (_dir, open) => {
    const a = open();
    a.ensure();
    await a.open();
    await a.write(3, chunk(3));
    await a.commit([3]);
    await a.close();
    const journal = join(a.dir, 'staged.log');
    appendFileSync(journal, Buffer.alloc(8)); // a zeroed record (index 0 with a zero check word)
    appendFileSync(journal, Buffer.from([4, 0, 0])); // half a record
    assert.deepEqual([...open().scan(TOTAL)], [3]);
    // Indexes past the end (another chunking of the file) are not counted either.
    assert.deepEqual([...open().scan(3)], []);
  }));

void test('a journal whose data file is gone names nothing, and is removed', () =>
  withStaging(async (_dir, open) => {
    const a = open();
    a.ensure();
    await a.open();
    await a.write(0, chunk(0));
    await a.commit([0]);
    await a.close();
    rmSync(a.modelFile);
    assert.equal(open().scan(TOTAL).size, 0);
    appendFileSync(a.modelFile, ''); // a fresh empty data file: the old journal must not come back
    assert.equal(open().scan(TOTAL).size, 0);
  }));

void test('a folder is keyed by the whole digest, and chunks of another file found in it are dropped, never reused', () =>
  withStaging(async (dir, open) => {
    const a = open();
    a.ensure();
    await a.open();
    for (let i = 0; i < TOTAL; i++) await a.write(i, chunk(i));
    await a.commit([...Array(TOTAL).keys()]);
    await a.close();
    assert.ok(a.dir.endsWith(`2-${sha256(MODEL)}-${CHUNK}`), a.dir);
    assert.equal(readFileSync(join(a.dir, 'sha256'), 'utf8'), sha256(MODEL));
    // Another file of the same size whose folder holds these chunks (a folder named by a
    // shared prefix, copied by hand): not one of them counts for it.
    const other = Buffer.from(MODEL);
    other[0] = (other[0] ?? 0) ^ 0xff;
    const b = new ChunkStore(dir, 'm', 2, sha256(other), CHUNK);
    cpSync(a.dir, b.dir, { recursive: true });
    assert.equal(b.scan(TOTAL).size, 0, 'scan alone reuses nothing');
    b.ensure();
    assert.equal(b.scan(TOTAL).size, 0);
    assert.deepEqual(readdirSync(b.dir), ['sha256'], 'the foreign chunks and journal are deleted');
    assert.equal(readFileSync(join(b.dir, 'sha256'), 'utf8'), sha256(other));
    // A folder of an older layout (no digest file) is not trusted either.
    rmSync(join(a.dir, 'sha256'));
    const c = open();
    assert.equal(c.scan(TOTAL).size, 0);
    c.ensure();
    assert.equal(c.scan(TOTAL).size, 0);
  }));

void test('the stager commits every write, in groups, and reports them staged only after the commit', () =>
  withStaging(async (_dir, open) => {
    const store = open();
    store.ensure();
    await store.open();
    const staged: number[] = [];
    const stager = new ChunkStager(store, new Set(), { staged: (n) => staged.push(n), failed: (err) => assert.fail(err) });
    for (let i = 0; i < TOTAL; i++) stager.add(i, chunk(i));
    for (let i = 0; i < TOTAL; i++) assert.ok(stager.holds(i), `chunk ${i} is held (not asked for again)`);
    assert.ok(stager.have.size < TOTAL, 'nothing is staged before its commit returns');
    await stager.drain();
    assert.equal(stager.have.size, TOTAL);
    assert.equal(stager.unstaged, 0);
    assert.equal(staged.reduce((s, n) => s + n, 0), TOTAL);
    await store.close();
    assert.equal(open().scan(TOTAL).size, TOTAL);
  }));

void test('a write that fails is reported, and nothing after it is committed', () =>
  withStaging(async (_dir, open) => {
    const store = open();
    store.ensure(); // never opened: every write fails
    const failures: Error[] = [];
    const stager = new ChunkStager(store, new Set(), { staged: () => assert.fail('nothing to stage'), failed: (err) => failures.push(err) });
    stager.add(0, chunk(0));
    await stager.drain();
    assert.equal(failures.length, 1);
    assert.match(failures[0]?.message ?? '', /chunk 0 could not be written/);
    assert.equal(stager.have.size, 0);
  }));
