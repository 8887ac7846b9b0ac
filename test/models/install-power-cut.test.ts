// An install, its undo and a rollback are one step as seen after a power cut (docs/models.md,
// "Installs and power cuts"): a real runtime in a child process is SIGKILLed between each two
// steps, a runtime started again on the same folder, and what serves must be a version with the
// model.json it was installed with. The version is told apart by its folder (both are the cls
// model), its model.json by maxBatchSize: 8 for version 1, 4 for version 2, 2 for another file
// installed as version 2 again (over a version 2 in place).
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { InstallStep } from '../../runtime/models/installer.js';
import { MODEL_FILES } from '../helpers/paths.js';
import { TempRepository } from '../helpers/repository.js';
import { startRuntime } from '../helpers/runtime.js';
import { waitFor } from '../helpers/wait.js';
import { Child } from '../helpers/wire.js';

const CHILD = fileURLToPath(new URL('../helpers/install-child.js', import.meta.url));
const V1 = { maxBatchSize: 8 };
const V2 = { maxBatchSize: 4 };
/** Parses, but contradicts the file: version 2 fails to load and the install is undone. */
const BROKEN = { inputs: [{ name: 'x', datatype: 'INT32', dims: [-1, 3, 48, 192] }] };
const V2_AGAIN = { maxBatchSize: 2 };
const BATCH_OF: Record<number, number> = { 1: 8, 2: 4 };

interface Case {
  stopAt: InstallStep | 'none';
  config: unknown;
  then?: 'rollback';
  /** The version that must serve after the restart. */
  serves: 1 | 2;
  /** Version 2 is there at first (with V2) and is installed again; `serves` 2 then says with which model.json. */
  again?: { servesBatch: number };
}

async function cutAt(c: Case): Promise<void> {
  const repo = new TempRepository({ cls: { versions: c.again ? { 1: MODEL_FILES.ocrCls, 2: MODEL_FILES.ocrCls } : { 1: MODEL_FILES.ocrCls }, config: c.again ? V2 : V1 } });
  const dataDir = mkdtempSync(join(tmpdir(), 'perch-data-'));
  const child = Child.spawn(process.execPath, [CHILD, repo.dir, dataDir, c.stopAt, MODEL_FILES.ocrCls, JSON.stringify(c.config), c.then ?? '']);
  try {
    const stopped = await waitFor(() => (child.stdout.includes(`at ${c.stopAt}`) ? 'stopped' : child.stdout.includes('done') ? 'done' : !child.running ? 'exited' : null), 60_000, `the child at ${c.stopAt}`);
    assert.equal(stopped, c.stopAt === 'none' ? 'done' : 'stopped', `${child.stdout}\n${child.stderr}`);
    await child.kill(); // the power cut
    const rt = await startRuntime(repo.dir, { dataDir });
    try {
      const served = rt.runtime.registry.statusOf('cls');
      assert.deepEqual(served.served, [c.serves], JSON.stringify(served));
      const inst = rt.runtime.registry.resolve('cls');
      const batch = c.again ? c.again.servesBatch : BATCH_OF[inst.version];
      assert.equal(inst.config.maxBatchSize, batch, `version ${inst.version} serves with the model.json of another`);
      assert.equal((JSON.parse(readFileSync(join(repo.dir, 'cls', 'model.json'), 'utf8')) as { maxBatchSize: number }).maxBatchSize, batch);
      const left = readdirSync(join(repo.dir, 'cls')).filter((e) => e.startsWith('.'));
      assert.deepEqual(left, [], 'nothing of the interrupted step left in the model folder');
      assert.ok(!existsSync(join(repo.dir, 'cls', String(c.serves), 'install.model.json')));
    } finally {
      await rt.stop();
    }
  } finally {
    await child.kill();
    repo.remove();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

const cases: Record<string, Case> = {
  'install, cut once staged: version 1 with its model.json': { stopAt: 'staged', config: V2, serves: 1 },
  'install, cut once renamed into place: version 2 with its model.json': { stopAt: 'renamed', config: V2, serves: 2 },
  'install, cut once model.json is written: version 2 with its model.json': { stopAt: 'configured', config: V2, serves: 2 },
  'install, not cut: version 2 with its model.json': { stopAt: 'none', config: V2, serves: 2 },
  'undone install (version 2 does not load), cut once renamed away: version 1 with its model.json': { stopAt: 'undo-renamed', config: BROKEN, serves: 1 },
  'rollback, cut once version 2 is renamed away: version 1 with its model.json': { stopAt: 'rollback-renamed', config: V2, then: 'rollback', serves: 1 },
  'rollback, cut once model.json is put back: version 1 with its model.json': { stopAt: 'rollback-configured', config: V2, then: 'rollback', serves: 1 },
  'rollback, not cut: version 1 with its model.json': { stopAt: 'none', config: V2, then: 'rollback', serves: 1 },
  'version 2 again, cut once the old one is moved aside: the old version 2 with its model.json': { stopAt: 'replaced', config: V2_AGAIN, serves: 2, again: { servesBatch: 4 } },
  'version 2 again, cut once renamed into place: the new version 2 with its model.json': { stopAt: 'renamed', config: V2_AGAIN, serves: 2, again: { servesBatch: 2 } },
  'version 2 again, not cut: the new version 2 with its model.json': { stopAt: 'none', config: V2_AGAIN, serves: 2, again: { servesBatch: 2 } },
  'version 2 again, undone (it does not load), cut once renamed away: the old version 2 with its model.json': { stopAt: 'undo-renamed', config: BROKEN, serves: 2, again: { servesBatch: 4 } },
};

for (const [name, c] of Object.entries(cases)) test(name, () => cutAt(c));
