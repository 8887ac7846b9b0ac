// `perch serve` on a port another process holds (issue 14, bug 1): it exits non-zero at once, with
// its own code and a sentence naming the port, instead of logging PERCH_ERR_INTERNAL and living
// on with its session threads.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { waitFor } from '../helpers/clients.js';
import { MODEL_FILES } from '../helpers/paths.js';
import { CLI, cleanEnv } from '../helpers/perch-process.js';
import { TempRepository } from '../helpers/repository.js';
import { Child } from '../helpers/wire.js';

const temp: string[] = [];
const children: Child[] = [];
let holder: Server | undefined;

after(async () => {
  for (const c of children) await c.kill();
  holder?.close();
  for (const d of temp) rmSync(d, { recursive: true, force: true });
});

test('a port already in use: exit 1 at once with PERCH_ERR_PORT_IN_USE naming the port', async () => {
  const server = createServer();
  holder = server;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  // A model, so session threads run: they are what kept the failed process alive.
  const repo = new TempRepository({ cls: { versions: { 1: MODEL_FILES.ocrCls } } });
  temp.push(repo.dir);
  const data = mkdtempSync(join(tmpdir(), 'perch-port-'));
  temp.push(data);

  const child = Child.spawn(process.execPath, [CLI, 'serve'], {
    env: cleanEnv({ PERCH_HOST: '127.0.0.1', PERCH_PORT: String(port), PERCH_DATA_DIR: data, PERCH_MODELS_DIR: repo.dir }),
  });
  children.push(child);
  // The models load first (seconds on a busy machine); after the failed listen it must not linger.
  await waitFor(() => !child.running, 60_000, `perch serve to exit (stderr so far: ${child.stderr})`);
  const exit = await child.exited;
  assert.deepEqual(exit, { code: 1, signal: null }, child.stderr);
  assert.match(child.stderr, /PERCH_ERR_PORT_IN_USE/);
  assert.ok(child.stderr.includes(`port ${port} `), `the port is named:\n${child.stderr}`);
  assert.doesNotMatch(child.stderr + child.stdout, /PERCH_ERR_INTERNAL/);
});
