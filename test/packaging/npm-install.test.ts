// `npm ci` on a fresh clone (issue 14, bug 13): npm finds nothing unknown in the project's config
// (a project .npmrc key that is not npm's own draws a warning on every npm command), every install
// script of a dependency is reviewed in package.json's allowScripts, and onnxruntime-node's, which
// would download GPU libraries, is the one denied: its CPU binaries ship inside the package.
// `npm run check:fresh` checks the same on a real `npm ci` of a fresh clone.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { REPO_ROOT } from '../helpers/paths.js';

/** The environment of a user's shell: none of the npm_* settings `npm test` passes down. */
function userEnv(): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^npm_/i.test(k) && !k.startsWith('ONNXRUNTIME_NODE_INSTALL')));
}

test('npm reports no unknown project config and no unreviewed install script', () => {
  const r = spawnSync('npm', ['install-scripts', 'ls', '--json'], { cwd: REPO_ROOT, env: userEnv(), encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.doesNotMatch(r.stderr, /npm warn/i, 'npm warns about this project');
  assert.deepEqual((JSON.parse(r.stdout) as { allowScripts: unknown[] }).allowScripts, [], 'dependencies whose install scripts are not reviewed');
});

test("onnxruntime-node's install script is denied, and its CPU binaries are in the package", () => {
  const pkg = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { allowScripts?: Record<string, boolean> };
  assert.equal(pkg.allowScripts?.['onnxruntime-node'], false);
  assert.ok(!existsSync(join(REPO_ROOT, '.npmrc')) || !/onnxruntime-node-install/.test(readFileSync(join(REPO_ROOT, '.npmrc'), 'utf8')), '.npmrc holds a key npm does not know');
  if (process.platform !== 'linux') return;
  const arch = process.arch === 'arm64' ? 'arm64' : 'x64';
  assert.ok(existsSync(join(REPO_ROOT, 'node_modules', 'onnxruntime-node', 'bin', 'napi-v6', 'linux', arch, 'libonnxruntime.so.1')), 'CPU binaries shipped in the package');
});
