// A Unix socket file swapped for a symbolic link between bind and chmod (red-team pass, session
// 17): anyone who may write to the socket's directory could have Perch chmod the link's target
// (server.socketMode on, say, a config file). The swap is made at the exact moment, in the
// server's 'listening' event before any listener runs: Perch refuses to start
// PERCH_ERR_LISTEN_FAILED and the target keeps its mode (docs/security.md). A path longer than
// sun_path is refused too (libuv bound a cut one).
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, unlinkSync, writeFileSync, chmodSync } from 'node:fs';
import { Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { PerchError } from '../../runtime/base/errors.js';
import { startRuntime, type TestRuntime } from '../helpers/runtime.js';

const dir = mkdtempSync(join(tmpdir(), 'perch-swap-'));
const repository = mkdtempSync(join(tmpdir(), 'perch-swap-repo-'));
const started: TestRuntime[] = [];
after(async () => {
  for (const rt of started) await rt.stop(); // one that started anyway (the failure this guards against)
  rmSync(dir, { recursive: true, force: true });
  rmSync(repository, { recursive: true, force: true });
});

/** Starts a runtime; one that starts anyway is stopped at the end (the test fails on it). */
async function start(...args: Parameters<typeof startRuntime>): Promise<TestRuntime> {
  const rt = await startRuntime(...args);
  started.push(rt);
  return rt;
}

/** Replaces `path` by a link to `target` when a server starts listening on it, before anyone hears. */
function swapWhenListening(path: string, target: string): { swapped: () => boolean; restore: () => void } {
  type Emit = (this: Server, event: string | symbol, ...args: unknown[]) => boolean;
  const proto = Server.prototype as unknown as { emit: Emit };
  const emit = proto.emit;
  let swapped = false;
  proto.emit = function (this: Server, event: string | symbol, ...args: unknown[]): boolean {
    if (event === 'listening' && this.address() === path) {
      unlinkSync(path);
      symlinkSync(target, path);
      swapped = true;
    }
    return emit.call(this, event, ...args);
  };
  return { swapped: () => swapped, restore: () => (proto.emit = emit) };
}

for (const key of ['socketPath', 'grpcSocketPath'] as const) {
  test(`server.${key} swapped for a link after bind: refused, the target's mode untouched`, async () => {
    const victim = join(dir, `${key}-victim.conf`);
    writeFileSync(victim, 'secret = 1\n');
    chmodSync(victim, 0o644);
    const sock = join(dir, `${key}.sock`);
    const swap = swapWhenListening(sock, victim);
    const dataDir = mkdtempSync(join(dir, 'data-'));
    try {
      await assert.rejects(start(repository, { dataDir, server: { [key]: sock, socketMode: '0600' } }),
        (e: PerchError) => e.code === 'PERCH_ERR_LISTEN_FAILED' && /was replaced after Perch bound it \(now a symbolic link\)/.test(e.message));
    } finally {
      swap.restore();
    }
    assert.ok(swap.swapped(), 'the swap happened');
    assert.equal(statSync(victim).mode & 0o777, 0o644, 'the link target keeps its mode');
    assert.equal(readFileSync(victim, 'utf8'), 'secret = 1\n');
  });
}

test('a socket path longer than sun_path is refused, nothing bound under a cut name', async () => {
  const before = readdirSync(dir);
  const long = join(dir, 'p'.repeat(120 - dir.length));
  const dataDir = mkdtempSync(join(dir, 'data-'));
  await assert.rejects(start(repository, { dataDir, server: { socketPath: long } }),
    (e: PerchError) => e.code === 'PERCH_ERR_LISTEN_FAILED' && /at most 107/.test(e.message));
  assert.deepEqual(readdirSync(dir).filter((f) => !before.includes(f) && f !== dataDir.slice(dir.length + 1)), []);
  assert.equal(existsSync(long), false);
});
