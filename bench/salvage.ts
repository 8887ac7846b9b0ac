// Salvage benchmark (docs/store.md "A corrupt file: what is salvaged"): how long start-up's open
// takes, and the process's RSS after it, for a large outbox intact and with one leaf page of the
// outbox table overwritten (quick_check fails, the salvage copies the rest, the file is moved
// aside). Each open runs in a process of its own, intact and damaged interleaved, from copies of
// the same file. Run: node dist/bench/salvage.js [--events 300000] [--rounds 3]
import Database from 'better-sqlite3';
import { execFileSync } from 'node:child_process';
import { closeSync, cpSync, mkdirSync, mkdtempSync, openSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { openStore } from '../runtime/store/store.js';
import { printTable } from './lib/stats.js';

const PAGE = 4096;

function arg(name: string, def: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : def;
}

interface Opened {
  ms: number;
  rssMb: number;
  count: number;
  salvaged?: number;
  lost?: number;
  timedOut?: boolean;
}

/** Child side: open the store once, report. */
async function openOnce(dir: string): Promise<void> {
  const t = performance.now();
  const store = openStore({ dataDir: dir });
  const ms = performance.now() - t;
  const inc = store.incidents[0];
  const out: Opened = { ms: Math.round(ms), rssMb: Math.round(process.memoryUsage().rss / 1e5) / 10, count: store.outbox.stats().count };
  if (inc) Object.assign(out, { salvaged: inc.salvaged, lost: inc.lost, timedOut: inc.timedOut });
  await store.close();
  process.stdout.write(JSON.stringify(out));
}

async function makeStore(dir: string, events: number): Promise<void> {
  const store = openStore({ dataDir: dir });
  for (let k = 0; k < events; k += 10_000) {
    const n = Math.min(10_000, events - k);
    await Promise.all(Array.from({ length: n }, (_, i) => store.outbox.append('sensor.reading', { i: k + i, pad: 'y'.repeat(150) })));
  }
  store.checkpoint();
  await store.close();
}

function middleLeaf(file: string): number {
  const db = new Database(file, { readonly: true });
  try {
    const leaves = db.prepare("SELECT pageno FROM dbstat WHERE name = 'outbox' AND pagetype = 'leaf' ORDER BY path").pluck().all() as number[];
    return leaves[Math.floor(leaves.length / 2)] as number;
  } finally {
    db.close();
  }
}

async function main(): Promise<void> {
  const open = process.argv.indexOf('--open');
  if (open >= 0) return openOnce(process.argv[open + 1] as string);
  const events = arg('events', 300_000);
  const rounds = arg('rounds', 3);
  const root = mkdtempSync(join(tmpdir(), 'perch-bench-salvage-'));
  try {
    const intact = join(root, 'intact');
    await makeStore(intact, events);
    rmSync(join(intact, 'perch.db-shm'), { force: true });
    const leaf = middleLeaf(join(intact, 'perch.db'));
    rmSync(join(intact, 'perch.db-shm'), { force: true });
    const mb = statSync(join(intact, 'perch.db')).size / (1024 * 1024);
    const rows: string[][] = [];
    const results: Array<Opened & { side: string; round: number; load: string }> = [];
    for (let r = 1; r <= rounds; r++) {
      for (const side of ['intact', 'damaged']) {
        const run = join(root, 'run');
        rmSync(run, { recursive: true, force: true });
        cpSync(intact, run, { recursive: true });
        if (side === 'damaged') {
          const fd = openSync(join(run, 'perch.db'), 'r+');
          writeSync(fd, Buffer.alloc(PAGE, 0xa5), 0, PAGE, (leaf - 1) * PAGE);
          closeSync(fd);
        }
        const load = loadavg().map((l) => l.toFixed(1)).join(' ');
        const o = JSON.parse(execFileSync(process.execPath, [fileURLToPath(import.meta.url), '--open', run], { encoding: 'utf8' })) as Opened;
        results.push({ ...o, side, round: r, load });
        rows.push([String(r), side, String(o.ms), String(o.rssMb), String(o.count), o.salvaged === undefined ? '-' : `${o.salvaged} / ${o.lost}${o.timedOut ? ' (timed out)' : ''}`, load]);
      }
    }
    printTable(`Salvage: ${events} events, ${mb.toFixed(1)} MiB, one outbox leaf overwritten (page ${leaf}); each open in its own process`, ['round', 'file', 'open ms', 'RSS MB', 'outbox count', 'salvaged / lost', 'load'], rows);
    mkdirSync('build/bench', { recursive: true });
    writeFileSync('build/bench/salvage.json', JSON.stringify({ events, fileMiB: mb, results }, null, 2));
    console.log('wrote build/bench/salvage.json');
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

await main();
