// The real models and samples the tests run on come from inside the repository (devDependencies
// in node_modules, files in test/fixtures), are the bytes test/fixtures/README.md lists, and no
// source file reaches for a folder beside the repository.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { basename, join, relative } from 'node:path';
import { test } from 'node:test';
import { FACE_PHOTO, FIXTURES, MODEL_FILES, OCR_IMAGES, REPO_ROOT, SPEECH_SAMPLE } from '../helpers/paths.js';

function digestTable(): Map<string, { size: number; sha256: string }> {
  const doc = readFileSync(join(FIXTURES, 'README.md'), 'utf8');
  const rows = [...doc.matchAll(/^\| `([^`]+)` \| (\d+) \| `([0-9a-f]{64})` \|$/gm)];
  return new Map(rows.map((m) => [m[1] as string, { size: Number(m[2]), sha256: m[3] as string }]));
}

test('every test model and sample is in the repository or node_modules, with the digest test/fixtures/README.md gives', () => {
  const table = digestTable();
  const files = [...Object.values(MODEL_FILES), SPEECH_SAMPLE, ...Object.values(OCR_IMAGES), FACE_PHOTO];
  for (const file of files) {
    assert.ok(existsSync(file), `${relative(REPO_ROOT, file)} is missing: run \`npm ci\` (the models come from devDependencies)`);
    const want = table.get(basename(file));
    assert.ok(want, `${basename(file)} has no row in test/fixtures/README.md`);
    const bytes = readFileSync(file);
    assert.equal(bytes.length, want.size, `${basename(file)}: size`);
    assert.equal(createHash('sha256').update(bytes).digest('hex'), want.sha256, `${basename(file)}: sha256`);
  }
  assert.equal(table.size, files.length, 'test/fixtures/README.md lists a file no test uses');
});

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name);
    if (e.isDirectory()) return e.name === 'node_modules' || e.name === 'dist' || e.name.startsWith('.') ? [] : sources(path);
    return /\.(ts|js|mjs|sh|json)$/.test(e.name) ? [path] : [];
  });
}

test('no source file reads from a folder beside the repository', () => {
  const outside = /\.\.\/shared\b|'\.\.', 'shared'/;
  const self = join(REPO_ROOT, 'test', 'models', 'fixtures.test.ts');
  const hits = ['runtime', 'cloud-sync', 'test', 'bench', 'packaging', 'docs', '.ci']
    .flatMap((d) => (existsSync(join(REPO_ROOT, d)) ? sources(join(REPO_ROOT, d)) : []))
    .filter((f) => f !== self && outside.test(readFileSync(f, 'utf8')));
  assert.deepEqual(hits.map((f) => relative(REPO_ROOT, f)), []);
});
