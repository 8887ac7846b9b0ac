// A Unix socket file swapped for a symbolic link between bind and chmod (red-team pass, session
// 17): anyone who may write to the socket's directory could have Perch chmod the link's target
// (server.socketMode on, say, a config file). The swap is made at the exact moment, in the
// server's 'listening' event before any listener runs: Perch refuses to start
// PERCH_ERR_LISTEN_FAILED and the target keeps its mode (docs/security.md). A path longer than
// sun_path is refused too (libuv bound a cut one). Each start runs in a child process.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { promisify } from 'node:util';

const run = promisify(execFile);
const dir = mkdtempSync(join(tmpdir(), 'perch-swap-'));
const repository = mkdtempSync(join(tmpdir(), 'perch-swap-repo-'));
after(() => {
  rmSync(dir, { recursive: true, force: true });
  rmSync(repository, { recursive: true, force: true });
});

interface Outcome {
  started: boolean;
  code?: string;
  message?: string;
  swapped: boolean;
}

/**
 * Starts a runtime in a child process (a start that fails leaves what it opened to the process's
 * end), with `server` overrides; with `swapTo`, the socket path `swapAt` is replaced by a link to
 * it when a server starts listening there, in its 'listening' event before any listener runs.
 */
async function startInChild(server: Record<string, unknown>, swapAt?: string, swapTo?: string): Promise<Outcome> {
  const script = `
    import { symlinkSync, unlinkSync } from 'node:fs';
    import { Server } from 'node:net';
    const [helpers, repository, dataDir, server, swapAt, swapTo] = JSON.parse(process.argv[1]);
    let swapped = false;
    if (swapTo) {
      const emit = Server.prototype.emit;
      Server.prototype.emit = function (event, ...args) {
        if (event === 'listening' && this.address() === swapAt) {
          unlinkSync(swapAt);
          symlinkSync(swapTo, swapAt);
          swapped = true;
        }
        return emit.call(this, event, ...args);
      };
    }
    const { startRuntime } = await import(helpers);
    let out;
    try {
      await startRuntime(repository, { dataDir, server });
      out = { started: true, swapped };
    } catch (e) {
      out = { started: false, code: e.code, message: e.message, swapped };
    }
    console.log(JSON.stringify(out));
    process.exit(0);
  `;
  const helpers = new URL('../helpers/runtime.js', import.meta.url).href;
  const dataDir = mkdtempSync(join(dir, 'data-'));
  const args = JSON.stringify([helpers, repository, dataDir, server, swapAt ?? null, swapTo ?? null]);
  const { stdout } = await run(process.execPath, ['--input-type=module', '-e', script, args]);
  return JSON.parse(stdout.trim().split('\n').pop() as string) as Outcome;
}

for (const key of ['socketPath', 'grpcSocketPath'] as const) {
  test(`server.${key} swapped for a link after bind: refused, the target's mode untouched`, async () => {
    const victim = join(dir, `${key}-victim.conf`);
    writeFileSync(victim, 'secret = 1\n');
    chmodSync(victim, 0o644);
    const sock = join(dir, `${key}.sock`);
    const out = await startInChild({ [key]: sock, socketMode: '0600' }, sock, victim);
    assert.ok(out.swapped, `the swap happened: ${JSON.stringify(out)}`);
    assert.equal(out.started, false, 'refused to start');
    assert.equal(out.code, 'PERCH_ERR_LISTEN_FAILED', JSON.stringify(out));
    assert.match(out.message ?? '', /was replaced after Perch bound it \(now a symbolic link\)/);
    assert.equal(statSync(victim).mode & 0o777, 0o644, 'the link target keeps its mode');
    assert.equal(readFileSync(victim, 'utf8'), 'secret = 1\n');
  });
}

test('a socket path longer than sun_path is refused, nothing bound under a cut name', async () => {
  const before = readdirSync(dir);
  const long = join(dir, 'p'.repeat(120 - dir.length));
  const out = await startInChild({ socketPath: long });
  assert.equal(out.code, 'PERCH_ERR_LISTEN_FAILED', JSON.stringify(out));
  assert.match(out.message ?? '', /at most 107/);
  assert.deepEqual(readdirSync(dir).filter((f) => !before.includes(f) && !f.startsWith('data-')), []);
  assert.equal(existsSync(long), false);
});
