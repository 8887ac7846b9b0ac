// One Perch per data directory (docs/store.md, "Opening"). Two `perch serve` on one data dir
// both served: each kept the outbox's seq counter in memory, so once the second had written its
// start-up events, every emit of the first failed (UNIQUE constraint on outbox.seq) while it went
// on answering inference. The second is now refused at start with a coded line and exit 1, the
// first keeps its store, and a process killed with SIGKILL leaves no lock behind.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { waitFor } from '../helpers/clients.js';
import { MODEL_FILES } from '../helpers/paths.js';
import { CLI, cleanEnv, servePerch } from '../helpers/perch-process.js';
import { TempRepository } from '../helpers/repository.js';
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
