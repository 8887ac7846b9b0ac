// onnxruntime-node's telemetry (runtime/sessions/ort-telemetry.ts): a plain process that opens a
// session gets ORT's telemetry database under $HOME at once (the premise: if a new ORT stops
// doing that, this test says so), while `perch serve` opens its sessions and writes nothing
// outside its data directory. Both run with a HOME of their own and without
// ORT_DISABLE_TELEMETRY (CI sets it for the whole job), an XDG_CACHE_HOME of the machine's, or
// the variables by which ORT tells it runs under CI (then it starts no telemetry at all).
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { waitFor } from '../helpers/clients.js';
import { MODEL_FILES, REPO_ROOT } from '../helpers/paths.js';
import { CLI, cleanEnv } from '../helpers/perch-process.js';
import { Child } from '../helpers/wire.js';

const ORT_DIR = join('.cache', 'Microsoft', 'DeveloperTools', '.onnxruntime');
/**
 * onnxruntime 1.30 starts no telemetry when any of these is set (the names are in its library's
 * strings; checked by hand: `CI=true` alone keeps the premise's session from writing anything).
 * CI services set some of them, so the premise would fail there for a reason that is not Perch's.
 */
const ORT_CI_VARIABLES = [
  'CI', 'TF_BUILD', 'GITHUB_ACTIONS', 'GITLAB_CI', 'CIRCLECI', 'TRAVIS', 'JENKINS_URL',
  'CODEBUILD_BUILD_ID', 'BUILDKITE', 'TEAMCITY_VERSION', 'SYSTEM_TEAMFOUNDATIONCOLLECTIONURI',
];
const children: Child[] = [];
const dirs: string[] = [];

after(async () => {
  for (const c of children) await c.kill();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function tempDir(prefix: string): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  dirs.push(d);
  return d;
}

/**
 * The environment of a process whose ORT telemetry nobody turned off, with its own HOME. ORT
 * puts its files under $XDG_CACHE_HOME when that is set (CI machines set it), else
 * $HOME/.cache: pinning it inside HOME keeps both tests looking at the one place ORT writes.
 */
function envWithHome(home: string): NodeJS.ProcessEnv {
  const env = cleanEnv({ HOME: home, XDG_CACHE_HOME: join(home, '.cache') });
  delete env.ORT_DISABLE_TELEMETRY;
  for (const name of ORT_CI_VARIABLES) delete env[name];
  return env;
}

test('a plain onnxruntime session writes ORT telemetry under HOME (the premise)', async () => {
  const home = tempDir('perch-ort-home-');
  const script = join(home, 'open-session.cjs');
  // Resolved from the repository, as Perch resolves it.
  writeFileSync(script, `const ort = require(${JSON.stringify(join(REPO_ROOT, 'node_modules', 'onnxruntime-node'))});
ort.InferenceSession.create(${JSON.stringify(MODEL_FILES.sileroVad)}).then(() => process.exit(0), (e) => { console.error(e); process.exit(1); });\n`);
  const child = Child.spawn(process.execPath, [script], { env: envWithHome(home) });
  children.push(child);
  const { code } = await child.exited;
  assert.equal(code, 0, child.stderr);
  assert.ok(existsSync(join(home, ORT_DIR)), `no ${ORT_DIR} after a plain session: has onnxruntime-node stopped writing telemetry? (runtime/sessions/ort-telemetry.ts)`);
});

test('perch serve opens its sessions without ORT telemetry: nothing written under HOME', async () => {
  const home = tempDir('perch-ort-home-');
  const dataDir = tempDir('perch-ort-data-');
  const child = Child.spawn(process.execPath, [CLI, 'serve'], {
    env: { ...envWithHome(home), PERCH_PORT: '0', PERCH_HOST: '127.0.0.1', PERCH_DATA_DIR: dataDir },
    cwd: dataDir,
  });
  children.push(child);
  // The shipped repository opens silero-vad's first session (and BlazeFace inline) before it
  // serves; ORT creates its telemetry files synchronously with the first session (the premise).
  await waitFor(() => !child.running || child.logLines().some((l) => l.msg === 'perch is serving'), 60_000, 'perch is serving');
  assert.ok(child.running, child.stderr);
  assert.deepEqual(readdirSync(home), [], 'perch serve wrote under HOME');
});
