// `npm start` (README): a SIGTERM sent to the npm process reaches Perch, which stops cleanly; no
// server is left running, re-parented, after npm has gone (issue 14, bug 2). `--ignore-scripts`
// skips only the prestart build (`npm test` has built dist/ already); the start script itself
// runs as a user's `npm start` runs it: npm -> shell -> node.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { waitFor } from '../helpers/clients.js';
import { MODEL_FILES, REPO_ROOT } from '../helpers/paths.js';
import { cleanEnv } from '../helpers/perch-process.js';
import { TempRepository } from '../helpers/repository.js';
import { Child } from '../helpers/wire.js';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

const temp: string[] = [];
const children: Child[] = [];
let perchPid = 0;

after(async () => {
  if (perchPid && alive(perchPid)) process.kill(perchPid, 'SIGKILL'); // the bug's orphan
  for (const c of children) await c.kill();
  for (const d of temp) rmSync(d, { recursive: true, force: true });
});

test('SIGTERM to `npm start` reaches perch: it stops cleanly and nothing is left running', async () => {
  const repo = new TempRepository({ cls: { versions: { 1: MODEL_FILES.ocrCls } } });
  temp.push(repo.dir);
  const data = mkdtempSync(join(tmpdir(), 'perch-start-'));
  temp.push(data);
  const npm = Child.spawn('npm', ['start', '--ignore-scripts'], {
    cwd: REPO_ROOT,
    env: cleanEnv({ PERCH_HOST: '127.0.0.1', PERCH_PORT: '0', PERCH_DATA_DIR: data, PERCH_MODELS_DIR: repo.dir, PERCH_LOG_LEVEL: 'info' }),
  });
  children.push(npm);

  const serving = () => npm.logLines().find((l) => l.msg === 'perch is serving') as { pid: number; port: number } | undefined;
  await waitFor(() => !npm.running || serving() !== undefined, 60_000, "the 'perch is serving' log line");
  assert.ok(npm.running, `npm start exited early:\n${npm.stderr}\n${npm.stdout}`);
  const { pid, port } = serving() as { pid: number; port: number };
  perchPid = pid;
  assert.notEqual(pid, npm.proc.pid);
  assert.equal((await fetch(`http://127.0.0.1:${port}/v2/health/ready`)).status, 200);

  npm.proc.kill('SIGTERM');
  await npm.exited;
  await waitFor(() => !alive(pid), 30_000, `perch (pid ${pid}) to exit after SIGTERM to npm start`).catch(() => {
    assert.fail(`npm start is gone but perch (pid ${pid}) still runs: the signal did not reach it`);
  });
  await waitFor(() => npm.logLines().some((l) => l.msg === 'stopped'), 10_000, "perch's 'stopped' log line");
  const stopping = npm.logLines().find((l) => l.msg === 'stopping: finishing in-flight work');
  assert.equal(stopping?.signal, 'SIGTERM', 'perch itself got the SIGTERM');
  await assert.rejects(fetch(`http://127.0.0.1:${port}/v2/health/ready`), 'the port is closed');
});
