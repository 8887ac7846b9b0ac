// A child process for test/models/install-power-cut.test.ts: starts a runtime on a repository,
// installs version 2 of `cls` (argv: the model file and its model.json), optionally rolls it
// back, and stops dead at the named step (prints `at <step>` and waits to be SIGKILLed, as a
// power cut would stop it). Prints `done` when it got through without meeting the step.
import type { InstallStep } from '../../runtime/models/installer.js';
import { startRuntime } from './runtime.js';

const [repository, dataDir, stopAt, file, modelJson, then] = process.argv.slice(2) as [string, string, InstallStep, string, string, string];
const rt = await startRuntime(repository, { dataDir });
const installer = rt.runtime.installer;
installer.hooks.step = (step) => {
  if (step !== stopAt) return;
  process.stdout.write(`at ${step}\n`); // a pipe: written before this returns (Linux)
  return new Promise<void>(() => undefined); // the runtime's server keeps the process up
};
try {
  await installer.install('cls', 2, file, JSON.parse(modelJson));
  if (then === 'rollback') await installer.rollback('cls');
} catch (err) {
  process.stdout.write(`failed ${(err as { code?: string }).code}\n`);
}
process.stdout.write('done\n');
await rt.stop();
