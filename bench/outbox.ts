// Outbox benchmark: acknowledged appends per second, next to raw better-sqlite3 writing the same
// rows at the same durability (the same pragmas from runtime/store/pragmas.ts: WAL +
// synchronous=FULL, and the same schema), in the same run.
//   (a) one client awaiting each ack       vs raw: one row per transaction
//   (b) 64 concurrent clients (group commit) vs raw: transactions of the batch size Perch formed
// Target: Perch >= 0.8 x raw. Run: node dist/bench/outbox.js
import Database from 'better-sqlite3';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { migrate } from '../runtime/store/migrations.js';
import { applyPragmas } from '../runtime/store/pragmas.js';
import { openStore } from '../runtime/store/store.js';
import { printTable } from './lib/stats.js';

const PHASE_MS = Number(process.env.PERCH_BENCH_PHASE_MS ?? 3000);
const ROUNDS = 2; // each pair runs twice, interleaved, and the better figure of each side is kept
const CLIENTS = 64;
const TYPE = 'sensor.reading';
const payload = (n: number) => ({ sensor: 'cam-1', value: 0.5, n });

function rawDb(dir: string): Database.Database {
  const db = new Database(join(dir, 'raw.db'));
  applyPragmas(db, { busyTimeoutMs: 5000 });
  migrate(db);
  return db;
}

/** Raw better-sqlite3: the same columns Perch writes (uuid, type, JSON, time, size), `batch` rows per transaction. */
function rawRate(db: Database.Database, batch: number): number {
  const insert = db.prepare('INSERT INTO outbox (seq, event_id, type, payload, created_at, bytes) VALUES (?, ?, ?, ?, ?, ?)');
  let seq = Number(db.prepare('SELECT coalesce(max(seq), 0) FROM outbox').pluck().get());
  const row = () => {
    const json = JSON.stringify(payload(seq));
    insert.run(++seq, randomUUID(), TYPE, json, Date.now(), Buffer.byteLength(json) + TYPE.length);
  };
  const tx = db.transaction(() => {
    for (let i = 0; i < batch; i++) row();
  });
  let rows = 0;
  const start = performance.now();
  while (performance.now() - start < PHASE_MS) {
    if (batch === 1) row(); // autocommit: one transaction per row
    else tx();
    rows += batch;
  }
  return rows / ((performance.now() - start) / 1000);
}

async function perchRate(dir: string, clients: number): Promise<{ rate: number; batch: number }> {
  const store = openStore({ dataDir: dir });
  const { outbox } = store;
  let acked = 0;
  let n = 0;
  const commitsBefore = outbox.stats().commits;
  const start = performance.now();
  const client = async () => {
    while (performance.now() - start < PHASE_MS) {
      await outbox.append(TYPE, payload(n++));
      acked++;
    }
  };
  await Promise.all(Array.from({ length: clients }, client));
  const rate = acked / ((performance.now() - start) / 1000);
  const batch = acked / (outbox.stats().commits - commitsBefore);
  await outbox.ack((await outbox.claim(1e9)).map((e) => e.seq)); // keep the table small between rounds
  await store.close();
  return { rate, batch };
}

async function main(): Promise<void> {
  const root = mkdtempSync(join(tmpdir(), 'perch-bench-outbox-'));
  try {
    console.log(`# outbox benchmark: node ${process.version}, ${cpus().length} cpus (${cpus()[0]?.model ?? '?'}), data in ${tmpdir()}`);
    console.log(`# durability: WAL + synchronous=FULL on both sides; ${PHASE_MS} ms per phase, best of ${ROUNDS}`);
    const raw = rawDb(root);
    const perchDir = join(root, 'perch');
    let rawSingle = 0;
    let perchSingle = 0;
    let rawBatched = 0;
    let perchGroup = 0;
    let batch = 0;
    for (let r = 0; r < ROUNDS; r++) {
      rawSingle = Math.max(rawSingle, rawRate(raw, 1));
      perchSingle = Math.max(perchSingle, (await perchRate(perchDir, 1)).rate);
      const g = await perchRate(perchDir, CLIENTS);
      if (g.rate > perchGroup) {
        perchGroup = g.rate;
        batch = g.batch;
      }
      rawBatched = Math.max(rawBatched, rawRate(raw, Math.max(1, Math.round(batch))));
    }
    raw.close();
    const fmt = (x: number) => `${Math.round(x).toLocaleString('en-US')}/s`;
    printTable(
      'outbox: acknowledged emits per second',
      ['mode', 'raw better-sqlite3', 'perch outbox', 'ratio'],
      [
        ['(a) 1 client, await each ack', fmt(rawSingle), fmt(perchSingle), (perchSingle / rawSingle).toFixed(2)],
        [`(b) ${CLIENTS} clients, group commit (avg batch ${batch.toFixed(1)})`, fmt(rawBatched), fmt(perchGroup), (perchGroup / rawBatched).toFixed(2)],
      ],
    );
    console.log('# raw (a): one row per transaction; raw (b): transactions of the same batch size; target ratio >= 0.8');
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

await main();
