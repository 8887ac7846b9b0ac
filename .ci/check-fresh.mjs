#!/usr/bin/env node
// `npm run check:fresh`: the repository stands on its own. Clones the committed HEAD into a new
// temporary folder (nothing beside it), then runs the README's two commands there as a new user
// would, with none of this shell's npm or PERCH_* settings:
//   1. `npm ci`: must print no npm warning about the project's own config, and must not fetch
//      onnxruntime-node's GPU libraries (the CPU ones ship in the package);
//   2. `npm start`: must come up, answer GET /v2/health/ready with 200, and stop (exit, nothing
//      left running) when `npm start` itself gets SIGTERM;
//   3. `npm test`, unless --no-test.
// Exits non-zero on the first failure. Uncommitted changes are not part of the check.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const args = new Set(process.argv.slice(2));
const runTests = !args.has('--no-test');
const keep = args.has('--keep');

const here = dirname(fileURLToPath(import.meta.url));
const git = (cwd, ...a) => {
  const r = spawnSync('git', a, { cwd, encoding: 'utf8' });
  if (r.status !== 0) fail(`git ${a.join(' ')} failed:\n${r.stderr}`);
  return r.stdout.trim();
};

function fail(message) {
  process.stderr.write(`check:fresh: FAILED: ${message}\n`);
  process.exit(1);
}

function step(message) {
  process.stdout.write(`\ncheck:fresh: ${message}\n`);
}

/** This shell's environment as a new user's: no npm_* (we may run under `npm run`), no PERCH_*,
 * no onnxruntime install switch, and no node_modules/.bin of this checkout on PATH. */
function userEnv(repo) {
  const env = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (/^npm_/i.test(k) || k.startsWith('PERCH_') || /^ONNXRUNTIME_NODE_INSTALL/.test(k) || k === 'INIT_CWD') continue;
    env[k] = v;
  }
  env.PATH = (process.env.PATH ?? '').split(delimiter).filter((p) => !p.startsWith(repo)).join(delimiter);
  return env;
}

function run(cwd, env, cmd, cmdArgs) {
  const r = spawnSync(cmd, cmdArgs, { cwd, env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 256 * 1024 * 1024 });
  process.stdout.write(r.stdout ?? '');
  process.stderr.write(r.stderr ?? '');
  if (r.error) fail(`${cmd} ${cmdArgs.join(' ')}: ${r.error.message}`);
  return { status: r.status, output: `${r.stdout}\n${r.stderr}` };
}

const repo = git(here, 'rev-parse', '--show-toplevel');
const commit = git(repo, 'rev-parse', 'HEAD');
if (git(repo, 'status', '--porcelain') !== '') {
  process.stderr.write(`check:fresh: note: uncommitted changes in ${repo} are not checked (this clones ${commit.slice(0, 12)})\n`);
}

const parent = mkdtempSync(join(tmpdir(), 'perch-fresh-'));
const clone = join(parent, 'perch');
let server = null;
process.on('exit', () => {
  if (server && server.exitCode === null) server.kill('SIGKILL');
  if (!keep) rmSync(parent, { recursive: true, force: true });
});
for (const s of ['SIGINT', 'SIGTERM']) process.on(s, () => process.exit(130));

step(`cloning ${commit.slice(0, 12)} into ${clone} (alone in its folder)`);
git(parent, 'clone', '--quiet', '--no-hardlinks', repo, clone);
git(clone, 'checkout', '--quiet', '--detach', commit);
const env = userEnv(repo);

step('npm ci');
const ci = run(clone, env, 'npm', ['ci', '--no-audit', '--no-fund']);
if (ci.status !== 0) fail(`npm ci exited ${ci.status}`);
const configWarnings = ci.output.split('\n').filter((l) => /npm warn (Unknown (project|user|env) config|install-scripts)/i.test(l));
if (configWarnings.length) fail(`npm ci warned about the project's setup:\n${configWarnings.join('\n')}`);
const gpuLib = join(clone, 'node_modules', 'onnxruntime-node', 'bin', 'napi-v6', 'linux', 'x64', 'libonnxruntime_providers_cuda.so');
if (existsSync(gpuLib)) fail('npm ci downloaded onnxruntime-node\'s GPU libraries');

step('npm start (PERCH_PORT=0: any free port), then GET /v2/health/ready, then SIGTERM to npm start');
await checkStart();

if (runTests) {
  step('npm test');
  const t = spawnSync('npm', ['test'], { cwd: clone, env, stdio: ['ignore', 'inherit', 'inherit'] });
  if (t.status !== 0) fail(`npm test exited ${t.status ?? t.signal}`);
}
step(`passed: a fresh clone of ${commit.slice(0, 12)} installs, starts, stops${runTests ? ', and passes its tests' : ''}`);

async function checkStart() {
  const dataDir = join(parent, 'data');
  server = spawn('npm', ['start'], { cwd: clone, env: { ...env, PERCH_PORT: '0', PERCH_DATA_DIR: dataDir }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  server.stdout.on('data', (d) => { out += d; });
  server.stderr.on('data', (d) => { err += d; });
  const exited = new Promise((resolve) => server.once('exit', (code, signal) => resolve({ code, signal })));
  const logLines = () => out.split('\n').flatMap((l) => { try { return [JSON.parse(l)]; } catch { return []; } });
  const show = () => `--- stdout\n${out.slice(-4000)}\n--- stderr\n${err.slice(-4000)}`;

  // The build runs first (prestart): minutes on a busy 2-core machine.
  const serving = await until(() => logLines().find((l) => l.msg === 'perch is serving') ?? (server.exitCode !== null ? 'exited' : undefined), 600_000);
  if (!serving || serving === 'exited') fail(`npm start did not come up:\n${show()}`);
  const url = `http://127.0.0.1:${serving.port}/v2/health/ready`;
  const ready = await until(async () => ((await fetch(url).catch(() => null))?.status === 200 ? true : undefined), 60_000);
  if (!ready) fail(`${url} never answered 200:\n${show()}`);
  process.stdout.write(`check:fresh: ${url} answered 200 (perch pid ${serving.pid})\n`);

  server.kill('SIGTERM');
  const gone = await until(async () => (server.exitCode !== null || server.signalCode !== null) && !alive(serving.pid) ? true : undefined, 60_000);
  if (!gone) {
    if (alive(serving.pid)) process.kill(serving.pid, 'SIGKILL');
    fail(`after SIGTERM to npm start, ${alive(serving.pid) ? 'perch (pid ' + serving.pid + ') still runs' : 'npm start still runs'}:\n${show()}`);
  }
  const how = await exited;
  const stopped = logLines().some((l) => l.msg === 'stopped');
  if (!stopped) fail(`perch did not log a clean stop after SIGTERM (npm start ended with ${JSON.stringify(how)}):\n${show()}`);
  if (await fetch(url).then(() => true, () => false)) fail(`${url} still answers after the stop`);
  process.stdout.write(`check:fresh: SIGTERM reached perch: it stopped cleanly and nothing is left running\n`);
}

function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function until(probe, timeoutMs) {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    const v = await probe();
    if (v !== undefined) return v;
    await new Promise((r) => setTimeout(r, 200));
  }
  return undefined;
}
