// One Perch per data directory (docs/store.md, "Opening"). Two `perch serve` on one data dir
// both served: each kept the outbox's seq counter in memory, so once the second had written its
// start-up events, every emit of the first failed (UNIQUE constraint on outbox.seq) while it went
// on answering inference. The second is now refused at start with a coded line and exit 1, the
// first keeps its store, and a process killed with SIGKILL leaves no lock behind. A perch.lock
// Perch cannot take in a directory it can write (another user's file, a directory by that name)
// left the data directory unguarded, and the store opened writable: start-up now stops
// PERCH_ERR_STORE_LOCK_FAILED. A restart on a full disk keeps the lock (it went unguarded too).
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { lockDataDir } from '../../runtime/store/data-dir-lock.js';
import { openStore } from '../../runtime/store/store.js';
import { waitFor } from '../helpers/clients.js';
import { MODEL_FILES } from '../helpers/paths.js';
import { CLI, cleanEnv, servePerch } from '../helpers/perch-process.js';
import { TempRepository } from '../helpers/repository.js';
import { mountSmallDisk } from '../helpers/small-disk.js';
import { Child, RecordingWs } from '../helpers/wire.js';

const temp: string[] = [];
const children: Child[] = [];
after(async () => {
  for (const c of children) await c.kill();
  for (const d of temp) rmSync(d, { recursive: true, force: true });
});

async function emit(port: number, type: string): Promise<Record<string, unknown>> {
  const ws = await RecordingWs.connect(`ws://127.0.0.1:${port}/v1/ws`);
  try {
    ws.socket.send(JSON.stringify({ id: type, op: 'emit', type, payload: { n: 1 } }));
    return await ws.waitAnswer(type);
  } finally {
    ws.socket.close();
  }
}

test('a second perch serve on a data directory in use is refused; the first keeps its store; SIGKILL leaves no lock', async () => {
  const repo = new TempRepository({ cls: { versions: { 1: MODEL_FILES.ocrCls } } });
  temp.push(repo.dir);
  const dir = mkdtempSync(join(tmpdir(), 'perch-lock-'));
  temp.push(dir);
  const config = join(dir, 'perch.json');
  writeFileSync(config, JSON.stringify({ dataDir: join(dir, 'data'), models: { repository: repo.dir }, server: { port: 0 }, log: { level: 'info' } }));

  const first = await servePerch(config, children);
  assert.equal((await emit(first.port, 'before')).ok, true);

  const second = Child.spawn(process.execPath, [CLI, 'serve', '--config', config], { env: cleanEnv() });
  children.push(second);
  await waitFor(() => !second.running || second.logLines().some((l) => l.msg === 'perch is serving'), 30_000, 'the second perch exits or serves');
  const { code } = await Promise.race([second.exited, new Promise<{ code: null }>((r) => setTimeout(() => r({ code: null }), 5_000))]);
  assert.equal(code, 1, `the second perch must be refused, not serve:\n${second.stderr}${second.stdout.slice(-1500)}`);
  assert.match(second.stderr, /^perch: PERCH_ERR_STORE_UNAVAILABLE: data directory .* is in use by another Perch process/m);
  assert.doesNotMatch(second.stderr, /\n\s+at /, 'no stack trace');

  // The first one's outbox still takes events (it failed every append once the second had written).
  const after = await emit(first.port, 'after');
  assert.equal(after.ok, true, JSON.stringify(after));

  // A process that dies without stopping leaves no lock: the kernel drops it with the process.
  await first.child.kill();
  const third = await servePerch(config, children);
  assert.equal((await emit(third.port, 'third')).ok, true);
});

test('a perch.lock that cannot be taken in a writable data directory stops start-up, coded; the store is never opened', async (t) => {
  const repo = new TempRepository({ cls: { versions: { 1: MODEL_FILES.ocrCls } } });
  temp.push(repo.dir);
  // A directory by that name stops anyone, root included; a file Perch's user may not write
  // (0444) only a user other than root: CI runs as root, which ignores file modes.
  const cases: Array<[string, (lock: string) => void]> = [['a directory', (lock) => mkdirSync(lock)]];
  if (process.getuid?.() !== 0) {
    cases.push(['a file Perch may not write', (lock) => {
      writeFileSync(lock, '');
      chmodSync(lock, 0o444);
    }]);
  } else {
    t.diagnostic('running as root: the not-writable file case needs another user; the directory case stands for it');
  }
  for (const [name, make] of cases) {
    const dir = mkdtempSync(join(tmpdir(), 'perch-lock-'));
    temp.push(dir);
    const dataDir = join(dir, 'data');
    mkdirSync(dataDir);
    make(join(dataDir, 'perch.lock'));
    const config = join(dir, 'perch.json');
    writeFileSync(config, JSON.stringify({ dataDir, models: { repository: repo.dir }, server: { port: 0 }, log: { level: 'info' } }));
    const child = Child.spawn(process.execPath, [CLI, 'serve', '--config', config], { env: cleanEnv() });
    children.push(child);
    await waitFor(() => !child.running || child.logLines().some((l) => l.msg === 'perch is serving'), 30_000, `${name}: perch exits or serves`);
    const { code } = await Promise.race([child.exited, new Promise<{ code: null }>((r) => setTimeout(() => r({ code: null }), 5_000))]);
    assert.equal(code, 1, `${name}: perch must refuse to start, not serve unlocked:\n${child.stderr}${child.stdout.slice(-1500)}`);
    assert.match(child.stderr, /^perch: PERCH_ERR_STORE_LOCK_FAILED: cannot lock .*data\/perch\.lock .*remove .*perch\.lock or make it a file Perch's user may write/m, name);
    assert.doesNotMatch(child.stderr, /\n\s+at /, 'no stack trace');
    assert.equal(existsSync(join(dataDir, 'perch.db')), false, `${name}: the store was never opened`);
  }
});

test('a restart on a full disk takes the lock again', (t) => {
  const disk = mountSmallDisk(1024 * 1024);
  if (typeof disk === 'string') {
    t.skip(disk);
    return;
  }
  try {
    const dataDir = join(disk.dir, 'data');
    lockDataDir(dataDir).release(); // a first start, with room
    disk.fill();
    const lock = lockDataDir(dataDir);
    try {
      assert.equal(lock.file, join(dataDir, 'perch.lock'), 'held on the full disk (its journal could not be made: no lock)');
    } finally {
      lock.release();
    }
  } finally {
    disk.unmount();
  }
});

test('no lock (a full disk, nothing to make it on): the store opens read-only, whatever its file allows', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'perch-lock-'));
  temp.push(dir);
  const store = openStore({ dataDir: dir, unlocked: Object.assign(new Error('database or disk is full'), { code: 'SQLITE_FULL' }) });
  try {
    assert.equal(store.writable, false);
    assert.equal(store.incidents[0]?.code, 'PERCH_ERR_STORE_FULL');
  } finally {
    await store.close();
  }
});
