// writeFileDurably (runtime/base/durable-file.ts): a process killed at any moment of a rewrite
// leaves the file whole, the old content or the new, never cut short. A writer process replaces
// one file again and again with two contents of 4 MiB in turn and is SIGKILLed at a different
// point of its writes each round; plain writeFileSync left a cut file in most rounds.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { writeFileDurably } from '../../runtime/base/durable-file.js';
import { REPO_ROOT } from '../helpers/paths.js';
import { waitFor } from '../helpers/wait.js';

const ROUNDS = 12;
const SIZE = 4 * 1024 * 1024;

// The writer: content a, b, a, b... into `file`, a line on stdout after each write.
const WRITER = `
const { writeFileDurably } = await import(${JSON.stringify(pathToFileURL(join(REPO_ROOT, 'dist', 'runtime', 'base', 'durable-file.js')).href)});
const [file, size] = [process.argv[1], Number(process.argv[2])];
const a = 'a'.repeat(size), b = 'b'.repeat(size);
for (let i = 0; ; i++) { writeFileDurably(file, i % 2 ? b : a); process.stdout.write('.'); }
`;

test('a writer SIGKILLed mid-rewrite leaves the old content or the new, whole', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'perch-durable-'));
  try {
    const file = join(dir, 'model.json');
    writeFileDurably(file, 'a'.repeat(SIZE));
    for (let round = 0; round < ROUNDS; round++) {
      const child = spawn(process.execPath, ['--input-type=module', '-e', WRITER, file, String(SIZE)], { stdio: ['ignore', 'pipe', 'inherit'] });
      let writes = 0;
      child.stdout.on('data', (d: Buffer) => (writes += d.length));
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      // Killed after a different number of whole writes each round, so at another point of the next.
      await waitFor(() => writes >= 1 + (round % 4), 60_000, `round ${round}: writes`);
      child.kill('SIGKILL');
      await exited;
      const text = readFileSync(file, 'latin1');
      assert.equal(text.length, SIZE, `round ${round}: ${text.length} bytes of ${SIZE}`);
      assert.ok(text === 'a'.repeat(SIZE) || text === 'b'.repeat(SIZE), `round ${round}: mixed content`);
    }
    // What a killed writer left beside it is its temporary file at most, never another name.
    assert.ok(readdirSync(dir).every((f) => f === 'model.json' || /^\.model\.json\.\d+\.tmp$/.test(f)), readdirSync(dir).join(', '));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
